"""Lossless depth recordings: 16-bit FFV1 in Matroska, which survives a killed process.

Values are stored as ``round(depth * scale)`` in ``gray16le``: metric depth in millimetres
(scale 1000; REP-118's 16UC1), relative depth scaled into 0..65535 with the scale kept in the
file's metadata. Every packet is flushed as it is written (``flush_packets``), and Matroska is
readable up to the last complete frame, so Ctrl-C, SIGTERM and even SIGKILL keep every frame
written before them (measured: all but the last few frames after SIGKILL; see MEASURED.md).

A file has one frame size. When the depth size changes (a folder of photos of different sizes,
a camera that changes mode) the recording is not rescaled (it would no longer be lossless): it
continues in a new segment file, ``run.mkv`` → ``run.part2.mkv`` → ``run.part3.mkv`` …, each
tagged with the recording's id and its segment number, the relative scale unchanged.

    for timestamp, depth in read_depth_recording("run.mkv"):  # one file; float32 H×W
        ...
    for timestamp, depth in read_depth_segments("run.mkv"):  # every segment, in order
        ...
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from edgedepth.errors import EdgedepthError
from edgedepth.frame import DepthKind

log = logging.getLogger("edgedepth")

MILLIMETRES = 1000.0
#: Time base of the recorded timestamps (Matroska's own resolution is 1 ms).
TIME_BASE = Fraction(1, 1000)


def frame_rate(fps: float) -> Fraction:
    """The exact rate a float stands for: 29.97 → 30000/1001 (NTSC), 25 → 25."""
    for base in (24, 30, 48, 60, 120):
        ntsc = Fraction(base * 1000, 1001)
        if abs(fps - float(ntsc)) < 0.006:
            return ntsc
    return Fraction(fps).limit_denominator(1001)


def segment_path(path: Path, segment: int) -> Path:
    """The file of a recording's ``segment`` (1: ``path`` itself, 2: ``name.part2.mkv``, …)."""
    return path if segment == 1 else path.with_name(f"{path.stem}.part{segment}{path.suffix}")


class DepthRecorder:
    """Writes depth maps to a 16-bit FFV1/MKV file, frame by frame; a new segment file each
    time the frame size changes (:data:`segments` lists them)."""

    def __init__(self, path: Path, fps: float, relative_max: float | None = None) -> None:
        self.path = path
        self.fps = fps
        self.relative_max = relative_max
        self.scale: float | None = None
        self.frames = 0
        self.segments: list[Path] = []
        self.recording_id = uuid.uuid4().hex
        self._last_pts = -1
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None

    def _open(self, depth: np.ndarray, kind: DepthKind) -> None:
        if self.scale is None and kind == DepthKind.METRIC_METERS:
            self.scale = MILLIMETRES
        elif self.scale is None:
            # Relative values have no unit: map 0..max into 0..65535, max from the first frame
            # with headroom (or given), and store the scale so the reader can undo it.
            top = self.relative_max or 2.0 * float(np.nanmax(depth)) or 1.0
            self.scale = 65535.0 / top
        path = segment_path(self.path, len(self.segments) + 1)
        # Matroska holds a cluster in memory until it closes: keep clusters short so little is
        # lost on a kill; FFV1 on one thread has no frame delay.
        container = av.open(
            str(path),
            "w",
            format="matroska",
            options={"flush_packets": "1", "cluster_time_limit": "100"},
        )
        self.segments.append(path)
        container.metadata["RECORDING_ID"] = self.recording_id
        container.metadata["SEGMENT"] = str(len(self.segments))
        container.metadata["DEPTH_KIND"] = kind.value
        container.metadata["DEPTH_SCALE"] = repr(self.scale)
        container.metadata["DEPTH_UNITS"] = (
            "millimetres" if kind == DepthKind.METRIC_METERS else "relative"
        )
        stream = container.add_stream("ffv1", rate=frame_rate(self.fps))
        stream.width, stream.height = depth.shape[1], depth.shape[0]
        stream.pix_fmt = "gray16le"
        stream.codec_context.thread_count = 1
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        self._container, self._stream = container, stream

    def write(self, depth: np.ndarray, kind: DepthKind, timestamp: float) -> None:
        if self._stream is not None and depth.shape != (self._stream.height, self._stream.width):
            previous = (self._stream.height, self._stream.width)
            self._close_segment()
            log.info(
                "video: depth size changed from %d×%d to %d×%d at frame %d: the lossless "
                "recording continues in %s (one frame size per file)",
                *previous,
                *depth.shape,
                self.frames,
                segment_path(self.path, len(self.segments) + 1),
            )
        if self._container is None:
            self._open(depth, kind)
        assert self._stream is not None and self._container is not None and self.scale is not None
        stored = np.clip(np.rint(np.nan_to_num(depth, nan=0.0) * self.scale), 0, 65535)
        frame = av.VideoFrame.from_ndarray(stored.astype(np.uint16), format="gray16le")
        pts = max(round(timestamp / TIME_BASE), self._last_pts + 1)  # strictly increasing
        frame.pts, frame.time_base = pts, TIME_BASE
        self._last_pts = pts
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def _close_segment(self) -> None:
        if self._container is not None:
            try:
                self._container.mux(self._stream.encode())
            finally:
                self._container.close()
                self._container, self._stream = None, None

    def close(self) -> None:
        self._close_segment()
        if len(self.segments) > 1:
            names = ", ".join(path.name for path in self.segments)
            log.info("video: lossless recording in %d segments: %s", len(self.segments), names)


def read_depth_recording(path: str | Path) -> Iterator[tuple[float, np.ndarray]]:
    """(timestamp seconds, float32 depth H×W) for every frame of a recording; metric
    recordings come back in metres. A truncated file yields every complete frame."""
    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise EdgedepthError(f"{path}: cannot open depth recording: {exc}") from None
    with container:
        metadata = {key.upper(): value for key, value in container.metadata.items()}
        if "DEPTH_SCALE" not in metadata:
            raise EdgedepthError(f"{path}: not an edgedepth depth recording (no DEPTH_SCALE tag)")
        scale = float(metadata["DEPTH_SCALE"])
        try:
            for frame in container.decode(video=0):
                stored = frame.to_ndarray(format="gray16le")
                yield float(frame.time or 0.0), (stored.astype(np.float32) / np.float32(scale))
        except av.error.InvalidDataError:  # the cut-off tail of a killed recording
            return


def _metadata(path: Path) -> dict[str, str]:
    try:
        with av.open(str(path)) as container:
            return {key.upper(): value for key, value in container.metadata.items()}
    except (av.FFmpegError, OSError) as exc:
        raise EdgedepthError(f"{path}: cannot open depth recording: {exc}") from None


def recording_segments(path: str | Path) -> list[Path]:
    """The segment files of the recording that starts at ``path``, in order (leftover parts of
    an older recording under the same name are not included)."""
    path = Path(path)
    recording_id = _metadata(path).get("RECORDING_ID")
    segments = [path]
    while recording_id is not None:
        candidate = segment_path(path, len(segments) + 1)
        if not candidate.exists() or _metadata(candidate).get("RECORDING_ID") != recording_id:
            break
        segments.append(candidate)
    return segments


def read_depth_segments(path: str | Path) -> Iterator[tuple[float, np.ndarray]]:
    """:func:`read_depth_recording` over every segment of a recording, in order (frames of
    different sizes when the size changed)."""
    for segment in recording_segments(path):
        yield from read_depth_recording(segment)


def recording_kind(path: str | Path) -> DepthKind:
    with av.open(str(path)) as container:
        metadata = {key.upper(): value for key, value in container.metadata.items()}
    return DepthKind(metadata["DEPTH_KIND"])
