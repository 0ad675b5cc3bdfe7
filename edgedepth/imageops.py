"""Image and depth resizing without OpenCV (Pillow), using OpenCV when it is installed.

Windows on Arm64 has no OpenCV wheel, so Pillow is the baseline; cv2 is faster where present.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgedepth.errors import EdgedepthError

try:  # optional extra `cv`
    import cv2
except ImportError:  # pragma: no cover - depends on the install
    cv2 = None

Interpolation = Literal["nearest", "bilinear", "bicubic", "area"]

_PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
}
_CV_FILTERS = (
    {
        "nearest": cv2.INTER_NEAREST,
        "bilinear": cv2.INTER_LINEAR,
        "bicubic": cv2.INTER_CUBIC,
        "area": cv2.INTER_AREA,
    }
    if cv2 is not None
    else {}
)


def resize_rgb(
    image: np.ndarray, size: tuple[int, int], interpolation: Interpolation
) -> np.ndarray:
    """Resize an H×W×3 uint8 image to ``size`` = (height, width)."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    if cv2 is not None:
        return cv2.resize(image, (width, height), interpolation=_CV_FILTERS[interpolation])
    return np.asarray(Image.fromarray(image).resize((width, height), _PIL_FILTERS[interpolation]))


def resize_depth(
    depth: np.ndarray, size: tuple[int, int], interpolation: Interpolation = "bilinear"
) -> np.ndarray:
    """Resize a float32 H×W depth map to ``size`` = (height, width)."""
    height, width = size
    depth = np.ascontiguousarray(depth, dtype=np.float32)
    if depth.shape == (height, width):
        return depth
    if cv2 is not None:
        return cv2.resize(depth, (width, height), interpolation=_CV_FILTERS[interpolation])
    resized = Image.fromarray(depth, mode="F").resize((width, height), _PIL_FILTERS[interpolation])
    return np.asarray(resized, dtype=np.float32)


# --- image files and value ranges, shared by sources, postprocessors and eval ---------------------

#: File suffixes read as images (folders of images, eval data folders).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def natural_key(path: Path) -> list[object]:
    """Sort key of a file name in natural order: ``img2`` before ``img10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def read_rgb(path: Path) -> np.ndarray:
    """An image file as H×W×3 uint8 RGB; a one-line :class:`EdgedepthError` if it cannot be read."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise EdgedepthError(f"{path}: cannot read image: {exc}") from None


def min_max(depth: np.ndarray) -> np.ndarray:
    """Scale to 0..1 by the map's own minimum and maximum (all zeros for a constant map)."""
    low, high = float(np.nanmin(depth)), float(np.nanmax(depth))
    return (depth - low) / (high - low) if high > low else np.zeros_like(depth)
