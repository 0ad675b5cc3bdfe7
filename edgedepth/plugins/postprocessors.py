"""Depth postprocessors: ``invert``, ``normalize``, ``clip``, ``resize`` and ``temporal``.

They run in order, on the depth map already brought back to the frame's size (unless
``preprocess.restore_size`` is off), and may change ``frame.depth_kind``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

import edgedepth
from edgedepth.api.frame import DepthKind, Frame
from edgedepth.api.options import StrictModel
from edgedepth.api.stages import BuildContext
from edgedepth.media.imageops import Interpolation, min_max, resize_depth


class InvertOptions(StrictModel):
    pass


class Invert:
    """LPCVC relative convention: ``1 - minmax(d)``, so disparity becomes near 0 → far 1."""

    def __init__(self, options: InvertOptions, context: BuildContext) -> None:
        pass

    def depth_kind_after(self, kind: DepthKind) -> DepthKind:
        if kind == DepthKind.RELATIVE_DEPTH:
            return DepthKind.RELATIVE_DISPARITY
        return DepthKind.RELATIVE_DEPTH

    def process(self, frame: Frame) -> Frame:
        frame.depth = (1.0 - min_max(frame.depth)).astype(np.float32)
        assert frame.depth_kind is not None
        frame.depth_kind = self.depth_kind_after(frame.depth_kind)
        return frame


class NormalizeOptions(StrictModel):
    method: Literal["minmax", "percentile"] = "minmax"
    """Scale between the frame's min and max, or between two percentiles (clipped)."""
    percentiles: tuple[float, float] = (2.0, 98.0)
    """Lower/upper percentiles for ``percentile`` (robust to a few outliers)."""


class Normalize:
    """Scale to 0..1 per frame (min-max or between percentiles, clipped)."""

    def __init__(self, options: NormalizeOptions, context: BuildContext) -> None:
        self.options = options

    def depth_kind_after(self, kind: DepthKind) -> DepthKind:
        return DepthKind.RELATIVE_DEPTH if kind == DepthKind.METRIC_METERS else kind

    def process(self, frame: Frame) -> Frame:
        depth = frame.depth
        if self.options.method == "minmax":
            frame.depth = min_max(depth).astype(np.float32)
        else:
            low, high = np.nanpercentile(depth, self.options.percentiles)
            scaled = (depth - low) / (high - low) if high > low else np.zeros_like(depth)
            frame.depth = np.clip(scaled, 0.0, 1.0).astype(np.float32)
        if frame.depth_kind is not None:
            frame.depth_kind = self.depth_kind_after(frame.depth_kind)
        return frame


class ClipOptions(StrictModel):
    min: float | None = None
    """Values below become this (metres for metric depth); omitted: no lower bound."""
    max: float | None = None
    """Values above become this; omitted: no upper bound."""

    @model_validator(mode="after")
    def _ordered(self) -> ClipOptions:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class Clip:
    """Clip to a range (e.g. the metres a metric model is trained for)."""

    def __init__(self, options: ClipOptions, context: BuildContext) -> None:
        self.options = options

    def process(self, frame: Frame) -> Frame:
        frame.depth = np.clip(frame.depth, self.options.min, self.options.max)
        return frame


class ResizeOptions(StrictModel):
    width: int | None = Field(None, gt=0)
    """Target width; omitted: the captured frame's size."""
    height: int | None = Field(None, gt=0)
    """Target height; omitted: the captured frame's size."""
    interpolation: Interpolation = "bilinear"
    """How the depth is resized: nearest | bilinear | bicubic | area."""

    @model_validator(mode="after")
    def _both_or_neither(self) -> ResizeOptions:
        if (self.width is None) != (self.height is None):
            raise ValueError("give both width and height, or neither (back to the frame's size)")
        return self


class Resize:
    """Resize the depth map (LPCVC: 480×640)."""

    def __init__(self, options: ResizeOptions, context: BuildContext) -> None:
        self.options = options

    def process(self, frame: Frame) -> Frame:
        if self.options.height is not None and self.options.width is not None:
            size = (self.options.height, self.options.width)
        else:
            size = (frame.height, frame.width)
        frame.depth = resize_depth(frame.depth, size, self.options.interpolation)
        return frame


class TemporalOptions(StrictModel):
    alpha: float = Field(0.25, gt=0, le=1)
    """Weight of the new frame in the running average (1 = no smoothing)."""
    threshold: float = Field(0.15, gt=0)
    """A pixel whose relative change exceeds this follows the new frame at once, so moving objects
    are not smeared."""


class Temporal:
    """Temporal smoothing for video. Relative depth has an unknown scale and shift per frame,
    so each frame is first aligned to the previous smoothed one by least squares (scale, shift);
    metric depth is averaged as is. Then an EMA, except where the change is above threshold."""

    def __init__(self, options: TemporalOptions, context: BuildContext) -> None:
        self.options = options
        self.smoothed: np.ndarray | None = None
        self.kind: DepthKind | None = None

    def process(self, frame: Frame) -> Frame:
        depth = frame.depth.astype(np.float32)
        previous = self.smoothed
        if previous is None or previous.shape != depth.shape or self.kind != frame.depth_kind:
            self.smoothed, self.kind = depth, frame.depth_kind
            return frame
        if frame.depth_kind != DepthKind.METRIC_METERS:
            depth = align_scale_shift(depth, previous)
        scale = max(float(np.nanmean(np.abs(previous))), 1e-6)
        changed = np.abs(depth - previous) > self.options.threshold * np.maximum(
            np.abs(previous), 0.1 * scale
        )
        blended = previous + self.options.alpha * (depth - previous)
        self.smoothed = np.where(changed, depth, blended).astype(np.float32)
        frame.depth = self.smoothed.copy()
        return frame


def align_scale_shift(depth: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``a * depth + b`` with (a, b) minimising the squared difference to ``reference``."""
    x = depth[::4, ::4].ravel().astype(np.float64)
    y = reference[::4, ::4].ravel().astype(np.float64)
    valid = np.isfinite(x) & np.isfinite(y)
    x, y = x[valid], y[valid]
    variance = x.var()
    if x.size < 2 or variance < 1e-12:
        return depth
    a = float(((x - x.mean()) * (y - y.mean())).mean() / variance)
    b = float(y.mean() - a * x.mean())
    return (a * depth + b).astype(np.float32)


@edgedepth.hookimpl
def register_postprocessors(register):
    register("invert", InvertOptions, Invert, description="1 - minmax(d): near 0, far 1 (LPCVC)")
    register("normalize", NormalizeOptions, Normalize, description="min-max or percentile to 0..1")
    register("clip", ClipOptions, Clip, description="clip to [min, max]")
    register("resize", ResizeOptions, Resize, description="resize to a size or back to the frame")
    register(
        "temporal",
        TemporalOptions,
        Temporal,
        description="video smoothing: scale/shift alignment + EMA with change threshold",
    )
