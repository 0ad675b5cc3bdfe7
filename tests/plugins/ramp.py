"""A test backend with a known range: metric depth on a ramp down from ``max_depth`` metres
(the top row far) to ``min_depth`` (default: a thousandth of it), with the pixels of
``nan_rows`` invalid; ``growth`` scales each later frame (depth that grows beyond the first
frame's range). ``declare_range: false``: a backend that does not say its range."""

import numpy as np
from pydantic import Field

import edgedepth


class RampOptions(edgedepth.StrictModel):
    max_depth: float = Field(80.0, gt=0)
    min_depth: float | None = Field(None, gt=0)
    declare_range: bool = True
    kind: edgedepth.DepthKind = edgedepth.DepthKind.METRIC_METERS
    nan_rows: int = Field(0, ge=0)
    growth: float = Field(1.0, gt=0)
    #: Every pixel of the first frame is NaN.
    nan_first_frame: bool = False


class RampBackend:
    def __init__(self, options: RampOptions, context: edgedepth.BuildContext) -> None:
        self.options = options
        self.depth_kind = options.kind
        if options.kind is edgedepth.DepthKind.METRIC_METERS and options.declare_range:
            self.depth_range = (0.0, options.max_depth)
        self.calls = 0

    def infer(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        low = self.options.min_depth or self.options.max_depth / 1000
        ramp = np.linspace(self.options.max_depth, low, height * width)
        ramp = ramp.astype(np.float32)
        depth = ramp.reshape(height, width) * np.float32(self.options.growth**self.calls)
        depth[: self.options.nan_rows] = np.nan
        if self.options.nan_first_frame and self.calls == 0:
            depth[:] = np.nan
        self.calls += 1
        return depth


@edgedepth.hookimpl
def register_backends(register: edgedepth.Register) -> None:
    register(
        "ramp",
        RampOptions,
        RampBackend,
        description="test: a depth ramp with a known range",
        check=lambda options, context: setattr(context, "depth_kind", options.kind),
    )
