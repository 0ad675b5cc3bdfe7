"""What a plugin's factory returns for each kind of stage, and what it is given to build it.

These are structural (``typing.Protocol``): a plugin needs no base class, only these methods.
Two methods are optional everywhere, and called when present:

- ``close()``: on every way out (end of stream, error, Ctrl-C, SIGTERM), once — but not while
  the stage's thread is still inside a call that could not be cancelled.
- ``cancel()``: when the run stops (Ctrl-C, SIGTERM, an error, a stage asking to stop), from
  another thread, on the stages before the sinks, so that a long call in progress (an
  inference of seconds) returns soon, e.g. by setting ONNX Runtime's ``RunOptions.terminate``.
  It must be thread-safe and may be called more than once; the interrupted call may raise.
  ``edgedepth run`` exits without waiting for a call that cannot be cancelled (the sinks are
  finalised first).

A stage that waits (for a device, a subscriber, a frame time) should wait on
``context.stop_requested`` rather than sleep, so that a stop request interrupts it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from edgedepth.api.frame import DepthKind, Frame, Intrinsics

RunMode = Literal["live", "file"]


class StopPipeline(Exception):
    """Raised by a source or sink to end the run cleanly (e.g. ``q`` pressed in a window)."""


@dataclass(frozen=True)
class SourceInfo:
    """What a source knows before the first frame: enough to size the backend and the sinks."""

    width: int
    height: int
    fps: float | None
    #: A live source (camera) produces frames at its own pace; a file can be read as fast as needed.
    live: bool
    frame_count: int | None = None
    description: str = ""
    #: The camera's intrinsics at ``width``×``height``, when the source knows them before the
    #: first frame (each frame carries its own in ``Frame.intrinsics``).
    intrinsics: Intrinsics | None = None


@dataclass
class BuildContext:
    """Handed to every factory as its second argument."""

    config_path: Path | None
    mode: RunMode
    cache_dir: Path
    source: SourceInfo | None = None
    #: (height, width) of the backend's input for the first frame, decided by the resize
    #: policy. Later frames may differ (``keep-aspect`` on photos of different sizes): a backend
    #: takes the size of each ``infer`` image.
    input_size: tuple[int, int] | None = None
    #: (min, max) the backend's depth can take, when it is known (a metric model's
    #: ``0..max_depth``): sinks size their recordings by it. Set once the backend is built,
    #: from the backend's optional ``depth_range`` attribute.
    depth_range: tuple[float, float] | None = None
    #: What the depth reaching the sinks will mean, when it is known before the first frame:
    #: the backend's ``depth_kind``, then each postprocessor's optional
    #: ``depth_kind_after(kind)`` (``normalize`` makes metres relative). Sinks that need metres
    #: (point clouds) refuse relative depth here, before the run.
    depth_kind: DepthKind | None = None
    #: Set when the run is asked to stop (end of a failed run, Ctrl-C, SIGTERM, ``q``): wait on
    #: it (``context.stop_requested.wait(seconds)``) instead of sleeping.
    stop_requested: threading.Event = field(default_factory=threading.Event)
    #: What whoever looks at the output must know, one line each (e.g. "random weights — the
    #: depth means nothing"): a stage adds a line when it is built; sinks that draw pictures
    #: (the display window, the mp4) show each as a caption on every frame. Stages are built in
    #: pipeline order, so a sink sees the notes of the source and the backend.
    notes: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        """Directory that relative paths in the config are relative to."""
        return self.config_path.parent if self.config_path else Path.cwd()


@runtime_checkable
class Source(Protocol):
    info: SourceInfo

    def frames(self) -> Iterator[Frame]:
        """Yield frames in capture order (``index``, ``timestamp``, ``image``, ``captured_at``)."""
        ...


@runtime_checkable
class ResizePolicy(Protocol):
    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The backend input (height, width) for a frame of this size."""
        ...

    def apply(self, image: np.ndarray) -> tuple[np.ndarray, Any]:
        """Resize an RGB uint8 frame to the backend input: float32 H×W×3 RGB on the 0–255
        scale (unrounded, unclipped); return it and what :meth:`restore` needs to undo it.
        Frames of one run may differ in size; each may get its own input size."""
        ...

    def restore(self, depth: np.ndarray, frame_size: tuple[int, int], state: Any) -> np.ndarray:
        """Bring a depth map computed on the resized image back to ``frame_size`` (h, w)."""
        ...


@runtime_checkable
class Backend(Protocol):
    depth_kind: DepthKind

    def infer(self, image: np.ndarray) -> np.ndarray:
        """float32 H×W×3 RGB on the 0–255 scale, already resized (not rounded to integers; the
        size may change from frame to frame) → float32 depth map (any size; 2-D or 1×1×H×W)."""
        ...


@runtime_checkable
class Postprocessor(Protocol):
    """Optional: ``depth_kind_after(kind: DepthKind) -> DepthKind``, what :meth:`process` makes
    of depth of ``kind`` (when it changes it), read before the run
    (:attr:`BuildContext.depth_kind`)."""

    def process(self, frame: Frame) -> Frame:
        """Transform ``frame.depth`` (and ``frame.depth_kind``); may keep state across frames."""
        ...


@runtime_checkable
class Sink(Protocol):
    def write(self, frame: Frame) -> None:
        """Consume one finished frame. Raise :class:`StopPipeline` to end the run cleanly."""
        ...


@dataclass(frozen=True)
class SinkOutput:
    """A file or folder a sink wrote, listed in the run summary. A sink may define
    ``outputs() -> list[SinkOutput]``; it is called after ``close()``."""

    path: Path
    #: Frames it holds.
    frames: int
    #: e.g. "colourised H.264", "lossless 16-bit depth".
    what: str = ""
