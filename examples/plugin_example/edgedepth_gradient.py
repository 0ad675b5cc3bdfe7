"""A complete edgedepth backend plugin: a "ground-plane prior" that ignores what the image shows
and says the top of the frame is ``far`` metres away and the bottom ``near`` metres."""

import numpy as np
from pydantic import Field

import edgedepth


class GradientOptions(edgedepth.StrictModel):  # validated from the YAML `backend:` section
    near: float = Field(1.0, gt=0, description="metres at the bottom row")
    far: float = Field(20.0, gt=0, description="metres at the top row")


class GradientBackend:
    depth_kind = edgedepth.DepthKind.METRIC_METERS  # what the numbers mean

    def __init__(self, options: GradientOptions, context: edgedepth.BuildContext) -> None:
        self.options = options  # load a model here (context.cache_dir is for caches)

    def infer(self, image: np.ndarray) -> np.ndarray:
        """``image``: H×W×3 RGB, float32 on the 0–255 scale, as the resize policy made it."""
        height, width = image.shape[:2]
        column = np.linspace(self.options.far, self.options.near, height, dtype=np.float32)
        return np.repeat(column[:, None], width, axis=1)  # H×W float32 depth

    def close(self) -> None:
        pass  # release sessions, files, devices here


@edgedepth.hookimpl
def register_backends(register: edgedepth.Register) -> None:
    register("gradient", GradientOptions, GradientBackend, description="ground-plane prior")
