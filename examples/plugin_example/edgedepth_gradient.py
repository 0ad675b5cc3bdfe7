"""A complete edgedepth backend plugin: a "ground-plane prior" that ignores the image and says
the top of the frame is ``far`` metres away and the bottom ``near`` metres."""

import numpy as np
from pydantic import Field

import edgedepth
from edgedepth.config import StrictModel


class GradientOptions(StrictModel):  # validated from the YAML `backend:` section
    near: float = Field(1.0, gt=0)
    far: float = Field(20.0, gt=0)


class GradientBackend:
    depth_kind = edgedepth.DepthKind.METRIC_METERS

    def __init__(self, options: GradientOptions, context: edgedepth.BuildContext) -> None:
        self.options = options

    def infer(self, image: np.ndarray) -> np.ndarray:
        # float32 H×W×3 RGB (0–255), at the size the resize policy chose for this frame
        height, width = image.shape[:2]
        column = np.linspace(self.options.far, self.options.near, height, dtype=np.float32)
        return np.repeat(column[:, None], width, axis=1)

    def close(self) -> None:
        pass  # release sessions, files, devices here


@edgedepth.hookimpl
def register_backends(register):
    register("gradient", GradientOptions, GradientBackend, description="ground-plane prior")
