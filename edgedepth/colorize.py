"""Depth to colour: lookup-table colour maps (no matplotlib), a display range that is stable
over time, and the side-by-side view (RGB | depth, colour bar, text) shared by the display
window and the video recording."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edgedepth.frame import DepthKind

ColormapName = Literal["turbo", "inferno", "spectral_r", "gray"]
COLORMAPS: tuple[ColormapName, ...] = ("turbo", "inferno", "spectral_r", "gray")


@functools.cache
def colormap(name: ColormapName) -> np.ndarray:
    """256×3 uint8 lookup table (sampled once from matplotlib's maps, stored as data)."""
    with np.load(Path(__file__).with_name("colormaps.npz")) as tables:
        return tables[name]


def nearness_index(
    depth: np.ndarray, kind: DepthKind | None, low: float, high: float
) -> np.ndarray:
    """Nearness (255 = near, whatever the kind: disparity grows near, depth grows far) as H×W
    uint8 on ``low..high``: a handful of float32 passes, no float64 maths per pixel. NaN counts
    as ``low``."""
    scale = np.float32(255.0 / max(high - low, 1e-12))
    scaled = np.subtract(depth, np.float32(low), dtype=np.float32)
    scaled *= scale
    # clip keeps NaN (np.fmax would not, but is several times slower): NaN counts as low
    np.clip(scaled, np.float32(0.0), np.float32(255.0), out=scaled)
    missing = np.isnan(scaled)
    if missing.any():
        scaled[missing] = 0.0
    if kind == DepthKind.RELATIVE_DISPARITY:
        scaled += np.float32(0.5)
    else:
        np.subtract(np.float32(255.5), scaled, out=scaled)
    return scaled.astype(np.uint8)


@functools.cache
def _palette(name: ColormapName) -> bytes:
    return np.ascontiguousarray(colormap(name)).tobytes()


@functools.cache
def _rgba_table(name: ColormapName) -> np.ndarray:
    """The map as 256 packed RGBA words: one 32-bit lookup per pixel."""
    table = np.full((256, 4), 255, np.uint8)
    table[:, :3] = colormap(name)
    return table.view(np.uint32).ravel()


def colorize(
    depth: np.ndarray,
    kind: DepthKind | None,
    low: float,
    high: float,
    name: ColormapName,
    channels: Literal[3, 4] = 3,
) -> np.ndarray:
    """H×W float depth → H×W×3 uint8 RGB, near at the bright/warm end of the map; with
    ``channels=4`` H×W×4 RGBA (alpha 255), the cheapest form (a video encoder's colour
    conversion takes it as it is)."""
    index = nearness_index(depth, kind, low, high)
    if channels == 4:
        return np.take(_rgba_table(name), index).view(np.uint8).reshape(*index.shape, 4)
    # A palette image is a lookup table in C: faster than numpy's 3-byte gathers.
    picture = Image.frombuffer("P", index.shape[::-1], index, "raw", "P", 0, 1)
    picture.putpalette(_palette(name))
    return np.asarray(picture.convert("RGB"))


@dataclass
class DisplayRange:
    """The value range mapped to the colour map, smoothed over frames so colours do not flicker
    (the reference DAv2 video script normalises each frame on its own, which does). For metric
    depth a fixed range in metres can be given instead."""

    fixed: tuple[float, float] | None = None
    #: Weight of the newest frame's percentiles in the running range.
    smoothing: float = 0.1
    percentiles: tuple[float, float] = (2.0, 98.0)
    _range: tuple[float, float] | None = field(default=None, init=False)

    def update(self, depth: np.ndarray) -> tuple[float, float]:
        if self.fixed is not None:
            return self.fixed
        finite = depth[np.isfinite(depth)]
        if finite.size == 0:
            return self._range or (0.0, 1.0)
        low, high = (float(v) for v in np.percentile(finite[::7], self.percentiles))
        if self._range is None:
            self._range = (low, high)
        else:
            a = self.smoothing
            self._range = (
                (1 - a) * self._range[0] + a * low,
                (1 - a) * self._range[1] + a * high,
            )
        return self._range


@functools.cache
def label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def unit_label(kind: DepthKind | None) -> str:
    return {
        DepthKind.METRIC_METERS: "m",
        DepthKind.RELATIVE_DISPARITY: "disparity (rel.)",
        DepthKind.RELATIVE_DEPTH: "depth (rel.)",
    }.get(kind, "")


def colour_bar(
    height: int, kind: DepthKind | None, low: float, high: float, name: ColormapName
) -> np.ndarray:
    """A vertical bar (near at the top) with value labels, H × 90 × 3 uint8."""
    bar_width, total_width = 18, 90
    ramp = np.linspace(1.0, 0.0, height)  # nearness, top = near
    table = colormap(name)
    panel = Image.new("RGB", (total_width, height), (24, 24, 24))
    bar = np.repeat(table[(ramp * 255 + 0.5).astype(np.uint8)][:, None], bar_width, axis=1)
    panel.paste(Image.fromarray(bar), (6, 0))
    draw = ImageDraw.Draw(panel)
    font = label_font(12)
    near_value, far_value = (high, low) if kind == DepthKind.RELATIVE_DISPARITY else (low, high)
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        value = near_value + (far_value - near_value) * fraction
        y = min(int(fraction * (height - 1)), height - 14)
        draw.text((bar_width + 10, y), f"{value:.2f}", fill=(235, 235, 235), font=font)
    draw.text((bar_width + 10, height // 2 - 20), unit_label(kind), fill=(180, 180, 180), font=font)
    return np.asarray(panel)


def side_by_side(
    image: np.ndarray,
    depth_rgb: np.ndarray,
    bar: np.ndarray | None = None,
    text: str = "",
) -> np.ndarray:
    """RGB | colourised depth [| colour bar], with a line of text over the RGB panel."""
    panels = [image, depth_rgb] + ([bar] if bar is not None else [])
    canvas = np.concatenate(panels, axis=1)
    if text:
        pil = Image.fromarray(canvas)
        draw = ImageDraw.Draw(pil)
        draw.rectangle((0, 0, 8 + 7 * len(text), 20), fill=(0, 0, 0))
        draw.text((4, 3), text, fill=(255, 255, 255), font=label_font(13))
        canvas = np.asarray(pil)
    return canvas
