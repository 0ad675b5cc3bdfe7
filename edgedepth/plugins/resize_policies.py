"""Resize policies: how a captured frame becomes the backend's input, and how the depth map
comes back to the frame's size.

- ``fixed``: stretch to width × height (LPCVC: 350×350 relative, 336×336 metric).
- ``keep-aspect``: the official DepthAnythingV2 preprocessing: scale so the shorter side is at
  least ``lower_bound``, each side a multiple of ``multiple_of`` (480×640 → 518×686), bicubic.
  Every frame gets its own size (a folder of photos of different sizes is fine).
- ``letterbox``: scale to fit inside width × height, pad the rest; the padding is cut off the
  depth map before it is resized back.
- ``none``: the backend takes the frame as it is (e.g. a graph that resizes inside itself).

The input is resized as the float image, the way the official ``infer_image`` does (it resizes
RGB / 255 with OpenCV's bicubic): the result is float32 on the 0–255 scale, neither rounded nor
clipped (the cubic overshoot is kept), and ``/255`` + ImageNet normalisation inside the graph
give the official numbers. ``restore`` resizes the depth back with bilinear
``align_corners=True``, the official output resize, whatever the policy.

Where each resize runs: both run on the host, in numpy (:mod:`edgedepth.media.imageops`), identical
on every install (with or without OpenCV). The cubic input resize cannot move into the graph:
the QNN HTP rejects cubic Resize. The LPCVC graphs (policy ``none`` with
``backend.graph.resize_to``/``output_size``) keep their in-graph bilinear ``align_corners``
resizes, which the HTP runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

import edgedepth
from edgedepth.api.options import StrictModel
from edgedepth.api.stages import BuildContext
from edgedepth.media.imageops import (
    Interpolation,
    Letterbox,
    keep_aspect_size,
    resize,
    resize_depth,
)


class FixedOptions(StrictModel):
    width: int = Field(350, gt=0)
    """Backend input width (the frame is stretched to it)."""
    height: int = Field(350, gt=0)
    """Backend input height."""
    interpolation: Interpolation = "bilinear"
    """How the frame is resized: nearest | bilinear | bicubic | area."""


class KeepAspectOptions(StrictModel):
    lower_bound: int = Field(518, gt=0)
    """The shorter side is scaled to at least this (the official 518)."""
    multiple_of: int = Field(14, gt=0)
    """Each side is a multiple of this (the ViT patch size, 14)."""
    interpolation: Interpolation = "bicubic"
    """How the frame is resized (official: bicubic)."""


class LetterboxOptions(StrictModel):
    width: int = Field(518, gt=0)
    """Backend input width: the frame is scaled to fit inside, the rest padded."""
    height: int = Field(518, gt=0)
    """Backend input height."""
    pad_value: int = Field(0, ge=0, le=255)
    """RGB value of the padding."""
    interpolation: Interpolation = "bilinear"
    """How the frame is resized: nearest | bilinear | bicubic | area."""


class NoOptions(StrictModel):
    pass


class _RestoreAlignCorners:
    """Shared ``restore``: the depth map back to the frame, bilinear ``align_corners=True``
    (the official DepthAnythingV2 output resize)."""

    def restore(self, depth: np.ndarray, frame_size: tuple[int, int], state: Any) -> np.ndarray:
        return resize_depth(depth, frame_size, "bilinear", align_corners=True)


class FixedResize(_RestoreAlignCorners):
    def __init__(self, options: FixedOptions, context: BuildContext) -> None:
        self.size = (options.height, options.width)
        self.interpolation = options.interpolation

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return self.size

    def apply(self, image: np.ndarray) -> tuple[np.ndarray, Any]:
        return resize(image, self.size, self.interpolation), None


class KeepAspectResize(_RestoreAlignCorners):
    def __init__(self, options: KeepAspectOptions, context: BuildContext) -> None:
        self.options = options

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return keep_aspect_size(height, width, self.options.lower_bound, self.options.multiple_of)

    def apply(self, image: np.ndarray) -> tuple[np.ndarray, Any]:
        size = self.input_size(image.shape[0], image.shape[1])
        return resize(image, size, self.options.interpolation), None


class LetterboxResize:
    def __init__(self, options: LetterboxOptions, context: BuildContext) -> None:
        self.options = options

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return self.options.height, self.options.width

    def apply(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        out_h, out_w = self.options.height, self.options.width
        box = Letterbox.fit(image.shape[:2], (out_h, out_w))
        content = resize(image, (box.content_height, box.content_width), self.options.interpolation)
        canvas = np.full((out_h, out_w, 3), self.options.pad_value, dtype=np.float32)
        return box.paste(content, canvas), box

    def restore(
        self, depth: np.ndarray, frame_size: tuple[int, int], state: Letterbox
    ) -> np.ndarray:
        # The depth map may not be at the letterboxed size: scale the padding box to it first.
        sy = depth.shape[0] / self.options.height
        sx = depth.shape[1] / self.options.width
        top, left = round(state.top * sy), round(state.left * sx)
        bottom = top + max(1, round(state.content_height * sy))
        right = left + max(1, round(state.content_width * sx))
        content = depth[top:bottom, left:right]
        return resize_depth(content, frame_size, "bilinear", align_corners=True)


class NoResize(_RestoreAlignCorners):
    def __init__(self, options: NoOptions, context: BuildContext) -> None:
        pass

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return height, width

    def apply(self, image: np.ndarray) -> tuple[np.ndarray, Any]:
        return image.astype(np.float32), None


@edgedepth.hookimpl
def register_resize_policies(register):
    register("fixed", FixedOptions, FixedResize, description="stretch to width × height")
    register(
        "keep-aspect",
        KeepAspectOptions,
        KeepAspectResize,
        description="official DAv2: shorter side ≥ lower_bound, sides multiple of 14, cubic",
    )
    register(
        "letterbox", LetterboxOptions, LetterboxResize, description="fit and pad; unpad output"
    )
    register("none", NoOptions, NoResize, description="frame as captured (in-graph resize)")
