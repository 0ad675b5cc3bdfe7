"""The unit that flows through the pipeline."""

from __future__ import annotations

import enum
import math
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


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an image, in pixels, in the OpenCV/ROS convention: the centre of
    pixel (column u, row v) is at (u, v), so a point at depth z in front of it lies at
    ``x = (u - cx) · z / fx``, ``y = (v - cy) · z / fy`` (what ``CameraInfo.k`` holds)."""

    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(value) for value in values) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"intrinsics {values}: four finite numbers, fx and fy > 0")

    @classmethod
    def from_matrix(cls, k: Any) -> Intrinsics:
        """From a 3×3 camera matrix K (nested lists or an array)."""
        return cls(float(k[0][0]), float(k[1][1]), float(k[0][2]), float(k[1][2]))

    @classmethod
    def from_horizontal_fov(cls, degrees: float, width: int, height: int) -> Intrinsics:
        """A camera of ``degrees`` horizontal field of view, square pixels, centred: for
        cameras that report no calibration (a webcam's datasheet gives its field of view)."""
        focal = (width / 2) / math.tan(math.radians(degrees) / 2)
        return cls(focal, focal, (width - 1) / 2, (height - 1) / 2)

    @property
    def matrix(self) -> list[list[float]]:
        """K, 3×3, row-major."""
        return [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]]

    def resized(self, size: tuple[int, int], to: tuple[int, int]) -> Intrinsics:
        """The same camera for an image resized from ``size`` (h, w) to ``to`` (h, w): pixel
        edges scale, so centres move by half a pixel of each size."""
        if size == to:
            return self
        sy, sx = to[0] / size[0], to[1] / size[1]
        return Intrinsics(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5
        )


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
    #: The camera's intrinsics for ``image``, where the source knows them (the synthetic source
    #: does; a calibrated camera would): point clouds and CameraInfo messages use them.
    intrinsics: Intrinsics | None = None
    #: Free-form per-frame data for plugins (e.g. the source file).
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
