"""Lossless depth recordings: 16-bit FFV1 in Matroska, which survives a killed process.

Values are stored as ``round(depth * scale)`` in ``gray16le``: metric depth in millimetres
(scale 1000; REP-118's 16UC1), relative depth scaled into 0..65535 with the scale kept in the
file's metadata. Every packet is flushed as it is written (``flush_packets``), and Matroska is
readable up to the last complete frame, so Ctrl-C, SIGTERM and even SIGKILL keep every frame
written before them (measured: all but the last few frames after SIGKILL; see MEASURED.md).

    for timestamp, depth in read_depth_recording("run.mkv"):  # float32 H×W, metres or relative
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from edgedepth.errors import EdgedepthError
from edgedepth.frame import DepthKind

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


class DepthRecorder:
    """Writes depth maps to a 16-bit FFV1/MKV file, frame by frame."""

    def __init__(self, path: Path, fps: float, relative_max: float | None = None) -> None:
        self.path = path
        self.fps = fps
        self.relative_max = relative_max
        self.scale: float | None = None
        self.frames = 0
        self._last_pts = -1
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None

    def _open(self, depth: np.ndarray, kind: DepthKind) -> None:
        if kind == DepthKind.METRIC_METERS:
            self.scale = MILLIMETRES
        else:
            # Relative values have no unit: map 0..max into 0..65535, max from the first frame
            # with headroom (or given), and store the scale so the reader can undo it.
            top = self.relative_max or 2.0 * float(np.nanmax(depth)) or 1.0
            self.scale = 65535.0 / top
        # Matroska holds a cluster in memory until it closes: keep clusters short so little is
        # lost on a kill; FFV1 on one thread has no frame delay.
        container = av.open(
            str(self.path),
            "w",
            format="matroska",
            options={"flush_packets": "1", "cluster_time_limit": "100"},
        )
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

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.mux(self._stream.encode())
            finally:
                self._container.close()
                self._container = None


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


def recording_kind(path: str | Path) -> DepthKind:
    with av.open(str(path)) as container:
        metadata = {key.upper(): value for key, value in container.metadata.items()}
    return DepthKind(metadata["DEPTH_KIND"])
