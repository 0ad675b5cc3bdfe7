"""Depth to colour: lookup-table colour maps (no matplotlib), a display range that is stable
over time, and the side-by-side view (RGB | depth, colour bar, text) shared by the display
window and the video recording."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from edgedepth.api.frame import DepthKind

if TYPE_CHECKING:
    from PIL import ImageFont


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
    conversion takes it as it is). A new, writable array."""
    index = nearness_index(depth, kind, low, high)
    if channels == 4:
        return np.take(_rgba_table(name), index).view(np.uint8).reshape(*index.shape, 4)
    from PIL import Image

    # A palette image is a lookup table in C: faster than numpy's 3-byte gathers.
    picture = Image.frombuffer("P", index.shape[::-1], index, "raw", "P", 0, 1)
    picture.putpalette(_palette(name))
    return np.array(picture.convert("RGB"))  # writable (asarray would be a read-only view)


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
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def font_size(height: int) -> int:
    """Text size in pixels for a picture ``height`` pixels tall: labels grow with the window
    (13 px at 480, 30 px at 1080), never below a readable 9 px."""
    return max(9, round(height / 36))


def _text_width(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    from PIL import Image, ImageDraw

    return int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=font)) + 1


@functools.cache
def _label_width(size: int, kind: DepthKind | None) -> int:
    """Width of the colour bar's widest label at font ``size``."""
    font = label_font(size)
    return max(_text_width(text, font) for text in ["-000.00", *unit_label(kind).split()])


def unit_label(kind: DepthKind | None) -> str:
    return {
        DepthKind.METRIC_METERS: "m",
        DepthKind.RELATIVE_DISPARITY: "disparity (rel.)",
        DepthKind.RELATIVE_DEPTH: "depth (rel.)",
    }.get(kind, "")


def colour_bar(
    height: int, kind: DepthKind | None, low: float, high: float, name: ColormapName
) -> np.ndarray:
    """A vertical bar (near at the top) with value labels sized for ``height``, H × W × 3 uint8.
    W (at least 90) depends only on the height and the kind, so that every frame of a run
    gets the same width."""
    from PIL import Image, ImageDraw

    size = font_size(height)
    font = label_font(size)
    unit_words = unit_label(kind).split()
    bar_width = max(18, round(size * 1.4))
    text_x = bar_width + 6 + size // 2
    text_width = _label_width(size, kind)
    total_width = max(90, text_x + text_width + size // 2)
    ramp = np.linspace(1.0, 0.0, height)  # nearness, top = near
    table = colormap(name)
    panel = Image.new("RGB", (total_width, height), (24, 24, 24))
    bar = np.repeat(table[(ramp * 255 + 0.5).astype(np.uint8)][:, None], bar_width, axis=1)
    panel.paste(Image.fromarray(bar), (6, 0))
    draw = ImageDraw.Draw(panel)
    line_height = round(size * 1.2)
    near_value, far_value = (high, low) if kind == DepthKind.RELATIVE_DISPARITY else (low, high)
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        value = near_value + (far_value - near_value) * fraction
        y = min(int(fraction * (height - 1)), height - line_height)
        draw.text((text_x, y), f"{value:.2f}", fill=(235, 235, 235), font=font)
    # The unit, a word a line, between the 0.25 and 0.5 labels.
    y = round(0.375 * height - len(unit_words) * line_height / 2 + line_height / 2)
    for word in unit_words:
        draw.text((text_x, y), word, fill=(180, 180, 180), font=font)
        y += line_height
    return np.asarray(panel)


def side_by_side(
    image: np.ndarray,
    depth_rgb: np.ndarray,
    bar: np.ndarray | None = None,
    text: str = "",
) -> np.ndarray:
    """RGB | colourised depth [| colour bar], with a line of text over the RGB panel (sized
    for the picture's height)."""
    from PIL import Image, ImageDraw

    panels = [image, depth_rgb] + ([bar] if bar is not None else [])
    canvas = np.concatenate(panels, axis=1)
    if text:
        pil = Image.fromarray(canvas)
        draw = ImageDraw.Draw(pil)
        size = font_size(canvas.shape[0])
        font = label_font(size)
        pad = max(3, size // 4)
        draw.rectangle(
            (0, 0, 2 * pad + _text_width(text, font), 2 * pad + round(size * 1.2)), fill=(0, 0, 0)
        )
        draw.text((pad, pad), text, fill=(255, 255, 255), font=font)
        canvas = np.asarray(pil)
    return canvas


#: Caption colours: amber on black, a warning that reads on any colour map.
CAPTION_TEXT = (255, 196, 0)
CAPTION_BACKGROUND = (0, 0, 0)


def caption(picture: np.ndarray, lines: list[str]) -> np.ndarray:
    """``picture`` with a black band under it holding ``lines`` (what a viewer must know about
    it, e.g. that the depth comes from random weights); the picture itself is not covered.
    Unchanged without lines."""
    if not lines:
        return picture
    band = _caption_band(*picture.shape[:3], tuple(lines))
    return np.concatenate([picture, band], axis=0)


@functools.lru_cache(maxsize=8)
def _caption_band(height: int, width: int, channels: int, lines: tuple[str, ...]) -> np.ndarray:
    """The band :func:`caption` adds (drawn once per picture size: the lines are a run's)."""
    from PIL import Image, ImageDraw

    size = max(10, round(height / 28))
    font = label_font(size)
    line_height = round(size * 1.35)
    band = Image.new("RGB", (width, len(lines) * line_height + size // 2), CAPTION_BACKGROUND)
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(lines):
        draw.text((size // 2, size // 4 + i * line_height), line, fill=CAPTION_TEXT, font=font)
    rows = np.asarray(band)
    if channels == 4:  # an RGBA depth picture: an opaque band
        rows = np.dstack([rows, np.full(rows.shape[:2], 255, np.uint8)])
    return rows
