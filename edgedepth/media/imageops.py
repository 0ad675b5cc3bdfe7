"""Every resize in edgedepth: one numpy implementation, the same numbers on every install.

OpenCV is not used: Windows on Arm64 has no wheel for it, and a depth map must not change with
the install. Instead the methods reproduce what ``cv2.resize`` computes (so that edgedepth equals
the official DepthAnythingV2 code, which resizes with OpenCV), and ``align_corners`` reproduces
``torch.nn.functional.interpolate`` (the official output resize):

- ``bicubic``: OpenCV ``INTER_CUBIC``: Keys cubic with A = -0.75, source coordinate
  ``(dst + 0.5) * scale - 0.5`` (``scale = 1 / (out / in)`` in double, then rounded to float32),
  coefficients computed in float32, border replicated, no antialiasing when shrinking. The
  overshoot of the cubic kernel is kept (no clipping).
- ``bilinear``: OpenCV ``INTER_LINEAR`` (half-pixel centres, no antialiasing), or with
  ``align_corners=True`` torch's ``bilinear`` (``src = dst * (in - 1) / (out - 1)``).
- ``nearest``: OpenCV ``INTER_NEAREST`` (``floor(dst * scale)``).
- ``area``: OpenCV ``INTER_AREA``: the pixel-area average when shrinking both sides; when either
  side is enlarged, OpenCV's bilinear variant of it (what ``cv2.resize`` does).

Resizing is separable: rows first (along the width), then columns, as OpenCV does, each pass a
gather and a weighted sum over precomputed per-axis (index, weight) tables cached by
(input size, output size, method). Float64 input is resized in float64, anything else in
float32; the pipeline resizes uint8 frames in float32 (2.9e-7 of the range from the official
float64 resize, bench/RESULTS.md: ~9 ms for 480×640×3 → 518×686 bicubic on one core).

"What OpenCV computes" means OpenCV's own code: in float64 the results are the same bit for
bit, in float32 to a rounding (OpenCV's SIMD cubic uses fused multiply-adds). The x86 OpenCV
wheels hand float32 cubic and float linear resizes to Intel IPP, which rounds its coordinates
differently (up to 1e-4 of the range), so OpenCV itself gives other numbers on ARM; the float64
cubic of the official preprocessing never goes to IPP.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from edgedepth.api.errors import EdgedepthError

Interpolation = Literal["nearest", "bilinear", "bicubic", "area"]

#: OpenCV's cubic-convolution constant (``interpolateCubic``).
CUBIC_A = np.float32(-0.75)
_DBL_EPSILON = float(np.finfo(np.float64).eps)


@dataclass(frozen=True, eq=False)
class AxisTable:
    """How each output index along one axis is made: ``sum_k input[index[k]] * weight[k]``,
    accumulated in order of ``k`` (the order OpenCV adds in). Stored tap-major so that each
    tap's row is contiguous (numpy gathers and multiplies much faster that way)."""

    index: np.ndarray  # (taps, out) intp, inside [0, in)
    weight: np.ndarray  # (taps, out) float32


def _cubic_coefficients(x: np.ndarray) -> np.ndarray:
    """OpenCV ``interpolateCubic`` in float32, operation by operation."""
    a = CUBIC_A
    one = np.float32(1)
    xp1 = x + one
    c0 = ((a * xp1 - 5 * a) * xp1 + 8 * a) * xp1 - 4 * a
    c1 = ((a + 2) * x - (a + 3)) * x * x + one
    omx = one - x
    c2 = ((a + 2) * omx - (a + 3)) * omx * omx + one
    c3 = one - c0 - c1 - c2
    return np.stack([c0, c1, c2, c3], axis=1).astype(np.float32)


def _scales(in_size: int, out_size: int) -> tuple[float, float]:
    """(inv_scale, scale) as ``cv::resize`` derives them from the sizes."""
    inv_scale = out_size / in_size
    return inv_scale, 1.0 / inv_scale


def _half_pixel_source(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's source coordinate, as float32, split into floor and fraction."""
    _, scale = _scales(in_size, out_size)
    position = ((np.arange(out_size) + 0.5) * scale - 0.5).astype(np.float32)
    floor = np.floor(position)
    return floor.astype(np.intp), (position - floor).astype(np.float32)


def _table(base: np.ndarray, weights: np.ndarray, in_size: int) -> AxisTable:
    taps = np.arange(weights.shape[1])
    index = np.clip(base[None, :] + taps[:, None], 0, in_size - 1)
    return AxisTable(np.ascontiguousarray(index), np.ascontiguousarray(weights.T, np.float32))


def _cubic_table(in_size: int, out_size: int) -> AxisTable:
    start, fraction = _half_pixel_source(in_size, out_size)
    return _table(start - 1, _cubic_coefficients(fraction), in_size)


def _linear_table(in_size: int, out_size: int, pin_borders: bool, area_variant: bool) -> AxisTable:
    if area_variant:  # cv::resize's INTER_AREA when enlarging
        inv_scale, scale = _scales(in_size, out_size)
        start = np.floor(np.arange(out_size) * scale).astype(np.intp)
        fraction = ((np.arange(out_size) + 1) - (start + 1) * inv_scale).astype(np.float32)
        fraction = np.where(fraction <= 0, np.float32(0), fraction - np.floor(fraction))
        fraction = fraction.astype(np.float32)
    else:
        start, fraction = _half_pixel_source(in_size, out_size)
    if pin_borders:
        # Along a row OpenCV pins the weights at the borders; along a column it only clamps the
        # row index and keeps the weights (two equal rows weighted 1 - f and f).
        low, high = start < 0, start >= in_size - 1
        fraction = np.where(low | high, np.float32(0), fraction)
        start = np.where(low, 0, np.where(high, in_size - 1, start))
    weights = np.stack([np.float32(1) - fraction, fraction], axis=1)
    return _table(start, weights, in_size)


def _align_corners_table(in_size: int, out_size: int) -> AxisTable:
    """torch ``interpolate(mode="bilinear", align_corners=True)`` (float32 arithmetic)."""
    scale = np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 else np.float32(0)
    position = np.arange(out_size, dtype=np.float32) * scale
    start = position.astype(np.intp)
    fraction = np.clip(position - start.astype(np.float32), 0, 1).astype(np.float32)
    weights = np.stack([np.float32(1) - fraction, fraction], axis=1)
    return _table(start, weights, in_size)


def _nearest_table(in_size: int, out_size: int) -> AxisTable:
    _, scale = _scales(in_size, out_size)
    index = np.minimum(np.floor(np.arange(out_size) * scale).astype(np.intp), in_size - 1)
    return AxisTable(index[None, :], np.ones((1, out_size), np.float32))


def _area_table(in_size: int, out_size: int) -> AxisTable:
    """OpenCV ``computeResizeAreaTab``: each output cell's source pixels, weighted by overlap."""
    _, scale = _scales(in_size, out_size)
    cells: list[list[tuple[int, float]]] = []
    for dst in range(out_size):
        start = dst * scale
        end = start + scale
        width = min(scale, in_size - start)
        first, last = math.ceil(start), math.floor(end)
        last = min(last, in_size - 1)
        first = min(first, last)
        cell = []
        if first - start > 1e-3:
            cell.append((first - 1, (first - start) / width))
        cell += [(src, 1.0 / width) for src in range(first, last)]
        if end - last > 1e-3:
            cell.append((last, min(min(end - last, 1.0), width) / width))
        cells.append(cell)
    taps = max(len(cell) for cell in cells)
    index = np.zeros((out_size, taps), np.intp)
    weight = np.zeros((out_size, taps), np.float32)
    for dst, cell in enumerate(cells):
        for tap, (src, alpha) in enumerate(cell):
            index[dst, tap], weight[dst, tap] = src, alpha
        # Padding taps add input * 0: point them at the cell's last pixel (already in cache).
        index[dst, len(cell) :] = cell[-1][0]
    return AxisTable(np.ascontiguousarray(index.T), np.ascontiguousarray(weight.T))


@functools.lru_cache(maxsize=512)
def axis_table(in_size: int, out_size: int, method: str, rows: bool = True) -> AxisTable:
    """The cached (index, weight) table for one axis. ``method`` is ``bicubic``, ``bilinear``,
    ``align-corners``, ``nearest``, ``area`` or ``area-linear`` (OpenCV's INTER_AREA when
    enlarging); ``rows`` is True for the pass along the width (OpenCV treats the borders of the
    two passes differently for the linear methods)."""
    if method == "bicubic":
        table = _cubic_table(in_size, out_size)
    elif method in ("bilinear", "area-linear"):
        table = _linear_table(in_size, out_size, rows, area_variant=method != "bilinear")
    elif method == "align-corners":
        table = _align_corners_table(in_size, out_size)
    elif method == "nearest":
        table = _nearest_table(in_size, out_size)
    elif method == "area":
        table = _area_table(in_size, out_size)
    else:
        raise ValueError(f"unknown resize method {method!r}")
    table.index.flags.writeable = False
    table.weight.flags.writeable = False
    return table


@functools.lru_cache(maxsize=512)
def _interleaved(table: AxisTable, channels: int) -> AxisTable:
    """The row-pass table for an image flattened to H × (W·C): one column per channel, so that
    the gather and the weights run along contiguous memory."""
    offsets = np.arange(channels)
    index = (table.index[:, :, None] * channels + offsets).reshape(table.index.shape[0], -1)
    weight = np.repeat(table.weight, channels, axis=1)
    return AxisTable(index, weight)


def _resample(image: np.ndarray, table: AxisTable, axis: int, dtype: type) -> np.ndarray:
    """Gather and weighted sum along ``axis`` (0 or 1) of a 2-D array, taps added in order, in
    ``dtype`` (uint8 input is gathered as it is and converted by the multiply: exact, and a
    quarter of the memory traffic)."""
    if len(table.index) == 1:  # nearest: a gather
        return np.take(image, table.index[0], axis=axis).astype(dtype, copy=False)
    weights = table.weight.astype(dtype)
    if axis == 0:
        weights = weights[:, :, None]
    result = np.multiply(np.take(image, table.index[0], axis=axis), weights[0], dtype=dtype)
    term = np.empty_like(result)
    gathered = term if image.dtype == dtype else None
    for tap in range(1, len(table.index)):
        gathered = np.take(image, table.index[tap], axis=axis, out=gathered)
        np.multiply(gathered, weights[tap], out=term)
        result += term
    return result


def _area_integer_factors(in_h: int, in_w: int, out_h: int, out_w: int) -> tuple[int, int] | None:
    """OpenCV's fast INTER_AREA path: both scales integers (block means)."""
    _, scale_y = _scales(in_h, out_h)
    _, scale_x = _scales(in_w, out_w)
    factor_y, factor_x = round(scale_y), round(scale_x)
    if abs(scale_x - factor_x) < _DBL_EPSILON and abs(scale_y - factor_y) < _DBL_EPSILON:
        return factor_y, factor_x
    return None


def _block_mean(image: np.ndarray, factor_y: int, factor_x: int) -> np.ndarray:
    """Mean of each factor_y × factor_x block, summed in OpenCV's order (row-major, four at a
    time) and scaled by the float32 ``1 / area`` as OpenCV does."""
    out_h, out_w = image.shape[0] // factor_y, image.shape[1] // factor_x
    blocks = image[: out_h * factor_y, : out_w * factor_x].reshape(
        out_h, factor_y, out_w, factor_x, *image.shape[2:]
    )
    pixels = [blocks[:, y, :, x] for y in range(factor_y) for x in range(factor_x)]
    total = np.zeros_like(pixels[0])
    area = len(pixels)
    k = 0
    while k <= area - 4:
        total += ((pixels[k] + pixels[k + 1]) + pixels[k + 2]) + pixels[k + 3]
        k += 4
    for pixel in pixels[k:]:
        total += pixel
    return total * image.dtype.type(np.float32(1) / np.float32(area))


def resize(
    image: np.ndarray,
    size: tuple[int, int],
    method: Interpolation = "bilinear",
    *,
    align_corners: bool = False,
) -> np.ndarray:
    """Resize an H×W or H×W×C image to ``size`` = (height, width).

    float64 input stays float64; any other input (uint8, float32, …) comes back as float32,
    unclipped (cubic overshoot is kept). ``align_corners`` applies to ``bilinear`` only."""
    out_h, out_w = int(size[0]), int(size[1])
    if out_h < 1 or out_w < 1:
        raise ValueError(f"cannot resize to {out_h}×{out_w}")
    if align_corners and method != "bilinear":
        raise ValueError("align_corners applies to bilinear only")
    dtype = np.float64 if image.dtype == np.float64 else np.float32
    in_h, in_w = image.shape[:2]
    if (in_h, in_w) == (out_h, out_w):
        return image.astype(dtype)
    if image.dtype not in (np.uint8, np.float32, np.float64):
        image = image.astype(dtype)
    image = np.ascontiguousarray(image)
    name: str = "align-corners" if align_corners else method
    if method == "area":
        if out_h <= in_h and out_w <= in_w:
            factors = _area_integer_factors(in_h, in_w, out_h, out_w)
            if factors is not None:
                return _block_mean(image.astype(dtype, copy=False), *factors)
        else:
            name = "area-linear"
    channels = image.shape[2] if image.ndim == 3 else 1
    flat = image.reshape(in_h, in_w * channels)
    row_table = _interleaved(axis_table(in_w, out_w, name, rows=True), channels)
    rows = _resample(flat, row_table, 1, dtype)
    resized = _resample(rows, axis_table(in_h, out_h, name, rows=False), 0, dtype)
    return resized.reshape(out_h, out_w, *image.shape[2:])


def resize_rgb(
    image: np.ndarray, size: tuple[int, int], interpolation: Interpolation
) -> np.ndarray:
    """Resize an H×W×3 uint8 picture for display or encoding: rounded and clipped to uint8
    (model input is resized with :func:`resize`, unrounded)."""
    if image.shape[:2] == tuple(size):
        return image
    resized = resize(image, size, interpolation)
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def resize_depth(
    depth: np.ndarray,
    size: tuple[int, int],
    interpolation: Interpolation = "bilinear",
    *,
    align_corners: bool = False,
) -> np.ndarray:
    """Resize a float32 H×W depth map to ``size`` = (height, width)."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.shape == tuple(size):
        return depth
    return resize(depth, size, interpolation, align_corners=align_corners)


def keep_aspect_size(
    height: int, width: int, lower_bound: int, multiple_of: int
) -> tuple[int, int]:
    """Official DAv2 sizing: the scale that brings the shorter side to ``lower_bound``, then each
    side rounded to a multiple (rounded up instead if rounding would go below the bound)."""
    scale = max(lower_bound / height, lower_bound / width)

    def constrain(value: float) -> int:
        rounded = round(value / multiple_of) * multiple_of
        if rounded < lower_bound:
            rounded = math.ceil(value / multiple_of) * multiple_of
        return int(rounded)

    return constrain(height * scale), constrain(width * scale)


@dataclass(frozen=True)
class Letterbox:
    """Where a picture scaled to fit inside a canvas sits: centred, aspect ratio kept."""

    top: int
    left: int
    content_height: int
    content_width: int

    @classmethod
    def fit(cls, size: tuple[int, int], canvas: tuple[int, int]) -> Letterbox:
        """The box for a ``size`` = (h, w) picture in a ``canvas`` = (h, w)."""
        scale = min(canvas[0] / size[0], canvas[1] / size[1])
        height = min(canvas[0], max(1, round(size[0] * scale)))
        width = min(canvas[1], max(1, round(size[1] * scale)))
        return cls((canvas[0] - height) // 2, (canvas[1] - width) // 2, height, width)

    def paste(self, content: np.ndarray, canvas: np.ndarray) -> np.ndarray:
        """Put ``content`` (already at the box's size) into ``canvas``; returns the canvas."""
        canvas[
            self.top : self.top + self.content_height, self.left : self.left + self.content_width
        ] = content
        return canvas


# --- image files and value ranges, shared by sources, postprocessors and eval ---------------------

#: File suffixes read as images (folders of images, eval data folders).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def natural_key(path: Path) -> list[object]:
    """Sort key of a file name in natural order: ``img2`` before ``img10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def read_rgb(path: Path) -> np.ndarray:
    """An image file as H×W×3 uint8 RGB, upright as its EXIF orientation says (as
    ``cv2.imread`` does); a one-line :class:`EdgedepthError` if it cannot be read."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except Image.DecompressionBombError as exc:  # its message says the size and the limit
        raise EdgedepthError(f"{path}: refused: {exc}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise EdgedepthError(f"{path}: cannot read image: {exc}") from None


def min_max(depth: np.ndarray) -> np.ndarray:
    """Scale to 0..1 by the map's own minimum and maximum (all zeros for a constant map)."""
    low, high = float(np.nanmin(depth)), float(np.nanmax(depth))
    return (depth - low) / (high - low) if high > low else np.zeros_like(depth)
