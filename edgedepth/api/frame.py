"""The unit that flows through the pipeline."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class DepthKind(str, enum.Enum):  # noqa: UP042 (StrEnum would change str(kind))
    """What the numbers of a depth map mean."""

    #: Larger is nearer, unknown scale and shift (DepthAnythingV2's relative head).
    RELATIVE_DISPARITY = "relative-disparity"
    #: Larger is farther, unknown scale (e.g. LPCVC's inverted 0..1, near 0 → far 1).
    RELATIVE_DEPTH = "relative-depth"
    #: Z-depth in metres (metric heads, ground truth).
    METRIC_METERS = "metric-meters"


@dataclass
class Frame:
    """One captured image and what the stages have made of it so far.

    ``timestamp`` is the media time in seconds (presentation time for files, capture clock for
    live sources); ``captured_at`` is ``time.perf_counter()`` at capture and only serves to
    measure latency inside this process.
    """

    index: int
    timestamp: float
    image: np.ndarray  # uint8 H×W×3 RGB, as captured
    captured_at: float
    #: Set by the preprocess stage: the network-sized image handed to the backend, float32
    #: H×W×3 RGB on the 0–255 scale (resized as float, not rounded). Released once the
    #: backend has run (it is the largest array a frame carries).
    model_input: np.ndarray | None = None
    #: Set by the preprocess stage: what the resize policy's ``apply`` returned beside the image,
    #: handed back to its ``restore`` (e.g. a letterbox's padding).
    resize_state: Any = None
    #: Set by the backend, brought back to the frame's size (unless configured otherwise).
    depth: np.ndarray | None = None  # float32 H×W
    depth_kind: DepthKind | None = None
    #: Ground-truth metric depth where the source knows it (the synthetic source does).
    ground_truth: np.ndarray | None = None
    #: Free-form per-frame data for plugins (e.g. the source file, camera intrinsics).
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays the frame holds (what a queue of frames costs in memory)."""
        arrays = (self.image, self.model_input, self.depth, self.ground_truth)
        return sum(array.nbytes for array in arrays if array is not None)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])
