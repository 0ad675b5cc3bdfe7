"""A test backend that flickers like a real relative-depth network on video: each frame's
output is the image-derived depth with a random scale, shift and noise."""

import numpy as np
from pydantic import Field

import edgedepth
from edgedepth.api.options import StrictModel


class JitteryOptions(StrictModel):
    seed: int = 0
    kind: edgedepth.DepthKind = edgedepth.DepthKind.RELATIVE_DISPARITY
    #: Relative std of the per-frame scale (relative depth only) and of the per-pixel noise.
    scale_jitter: float = Field(0.1, ge=0)
    noise: float = Field(0.02, ge=0)


class JitteryBackend:
    def __init__(self, options: JitteryOptions, context: edgedepth.BuildContext) -> None:
        self.options = options
        self.depth_kind = options.kind
        self.rng = np.random.default_rng(options.seed)

    def infer(self, image: np.ndarray) -> np.ndarray:
        base = 1.0 + image.astype(np.float32).mean(axis=2) / 255.0
        noise = self.rng.normal(0, self.options.noise, base.shape).astype(np.float32)
        depth = base * (1 + noise)
        if self.depth_kind != edgedepth.DepthKind.METRIC_METERS:
            scale = 1 + self.rng.normal(0, self.options.scale_jitter)
            depth = scale * depth + self.rng.normal(0, self.options.scale_jitter)
        return depth.astype(np.float32)


@edgedepth.hookimpl
def register_backends(register):
    register("jittery", JitteryOptions, JitteryBackend, description="test: flickering depth")
