"""Recordings: one video writer (:class:`VideoWriter`) for the colourised mp4 and for the
lossless depth recording (:class:`DepthRecorder`), and the reader of depth recordings.

Both survive a killed process: every packet is flushed as it is written (``flush_packets``);
the mp4 is fragmented (a fragment per frame) and Matroska is readable up to its last complete
cluster, so Ctrl-C, SIGTERM and even SIGKILL keep every frame written before them (measured:
all but the last few frames after SIGKILL; see MEASURED.md).

Lossless depth: 16-bit ``gray16le`` video, the format named by the file's extension
(:data:`LOSSLESS_FORMATS`): ``.mkv`` FFV1 in Matroska (the archival standard, smallest files),
``.nut`` FFVHuff in NUT (a tenth of FFV1's CPU on noisy depth, files about 20 % larger: for a
machine whose cores the model needs). A pixel is stored as
``round(depth / unit) + offset``, and 0 marks an invalid pixel (NaN, infinite, or a metric depth
≤ 0), read back as NaN. Nothing is ever clipped: the unit is chosen when the recording starts,
and a frame beyond its range starts a new segment in a coarser unit:

- metric depth: the finest of 1, 2, 5, 10 … mm (up to 1 m) whose 65534 steps reach the depth
  expected — the model's declared range (``max_depth``: 1 mm up to 65 m, 2 mm for the 80 m of
  the outdoor model) or the video sink's ``metric_max``, else the first frame's largest depth;
- relative depth: ``relative_max`` when given, else 0..1 for maps that are normalised (the
  first frame within 0..1), otherwise 0 .. 4 × the first frame's maximum, with ``offset`` 1 so
  that 0 is a value;
- a frame beyond the unit's range: the recording continues in a new segment in the finest unit
  that reaches it (metric) or 4 × that frame's maximum (relative), with a warning saying which
  option records it in one file; only metric depth beyond 65 km (1 m steps) is clipped.

The round trip is exact to each segment's unit (``|read - written| ≤ unit / 2``). The unit,
offset and kind are in each file's metadata. A file has one frame size and one unit: when the
size changes (photos of different sizes, a camera that changes mode) or the unit grows, the
recording continues in a new segment file, ``run.mkv`` → ``run.part2.mkv`` …, each tagged with
the recording's id.

    for timestamp, depth in read_depth_recording("run.mkv"):  # one file; float32 H×W
        ...
    for timestamp, depth in read_depth_segments("run.mkv"):  # every segment, in order
        ...
"""

from __future__ import annotations

import glob
import logging
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgedepth.api.errors import EdgedepthError, write_error
from edgedepth.api.frame import DepthKind

if TYPE_CHECKING:
    import av


log = logging.getLogger("edgedepth")

#: Time base of the lossless recording's timestamps (Matroska's own resolution is 1 ms).
TIME_BASE = Fraction(1, 1000)
#: Units tried for metric depth, in metres: the finest that covers the range is used.
METRIC_UNITS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
#: Relative depth that is not normalised: the range is this many times the first frame's max.
RELATIVE_HEADROOM = 4.0
#: The stored value of an invalid pixel.
INVALID = 0
LARGEST = 65535


@dataclass(frozen=True)
class LosslessFormat:
    container: str
    codec: str
    codec_options: Mapping[str, str]
    container_options: Mapping[str, str]


#: Lossless depth formats by file extension. FFV1's range coder spends ~19 ms of CPU on a noisy
#: 640×480 16-bit map (3 ms on a smooth one); FFVHuff's Huffman codes ~2 ms on either.
LOSSLESS_FORMATS = {
    # Matroska holds a cluster in memory until it closes: short clusters lose little on a kill.
    ".mkv": LosslessFormat("matroska", "ffv1", {}, {"cluster_time_limit": "100"}),
    ".nut": LosslessFormat("nut", "ffvhuff", {"pred": "median"}, {}),
}


def lossless_format(path: Path) -> LosslessFormat:
    """The format of a lossless recording named ``path`` (a one-line error for others)."""
    try:
        return LOSSLESS_FORMATS[path.suffix.lower()]
    except KeyError:
        raise EdgedepthError(
            f"{path}: a lossless depth recording is .mkv (FFV1) or .nut (FFVHuff, less CPU)"
        ) from None


def frame_rate(fps: float) -> Fraction:
    """The exact rate a float stands for: 29.97 → 30000/1001 (NTSC), 25 → 25."""
    for base in (24, 30, 48, 60, 120):
        ntsc = Fraction(base * 1000, 1001)
        if abs(fps - float(ntsc)) < 0.006:
            return ntsc
    return Fraction(fps).limit_denominator(1001)


class VideoWriter:
    """One video file, written frame by frame: created at the first frame (its size), frames
    stamped with increasing timestamps, every packet flushed, finished by :meth:`close`. A
    write failure is one line naming the file."""

    def __init__(
        self,
        path: Path,
        *,
        container_format: str,
        codec: str,
        pix_fmt: str,
        rate: Fraction,
        time_base: Fraction,
        container_options: Mapping[str, str] = {},
        codec_options: Mapping[str, str] = {},
        metadata: Mapping[str, str] = {},
        threads: int | None = None,
    ) -> None:
        self.path = path
        self.container_format = container_format
        self.codec = codec
        self.pix_fmt = pix_fmt
        self.rate = rate
        self.time_base = time_base
        self.container_options = {"flush_packets": "1", **container_options}
        self.codec_options = dict(codec_options)
        self.metadata = dict(metadata)
        self.threads = threads
        #: Frames handed to the encoder (what is readable may be fewer after a failure:
        #: :func:`count_frames` reads the file back).
        self.frames = 0
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._last_pts = -1

    @property
    def size(self) -> tuple[int, int] | None:
        """(height, width) of the file, once it is created."""
        return None if self._stream is None else (self._stream.height, self._stream.width)

    def _open(self, height: int, width: int) -> None:
        import av

        try:
            container = av.open(
                str(self.path), "w", format=self.container_format, options=self.container_options
            )
        except (av.FFmpegError, OSError) as exc:
            raise write_error(self.path, exc) from None
        for key, value in self.metadata.items():
            container.metadata[key] = value
        stream = container.add_stream(self.codec, rate=self.rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = self.pix_fmt
        stream.options = self.codec_options
        if self.threads is not None:
            stream.codec_context.thread_count = self.threads
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        self._container, self._stream = container, stream

    def write(self, array: np.ndarray, array_format: str, timestamp: float) -> None:
        """Encode one picture (H×W×3 ``rgb24``, H×W×4 ``rgba`` or H×W ``gray16le``) shown at
        ``timestamp`` s;
        timestamps are kept strictly increasing (a live run with drops stays in real time)."""
        import av

        if self._container is None:
            self._open(array.shape[0], array.shape[1])
        assert self._container is not None and self._stream is not None
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=array_format)
        pts = max(round(timestamp / self.time_base), self._last_pts + 1)
        frame.pts, frame.time_base = pts, self.time_base
        self._last_pts = pts
        try:
            self._container.mux(self._stream.encode(frame))
        except (av.FFmpegError, OSError) as exc:
            raise write_error(self.path, exc) from None
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (idempotent)."""
        import av

        container, self._container = self._container, None
        if container is None:
            return
        try:
            try:
                container.mux(self._stream.encode())
            finally:
                container.close()
        except (av.FFmpegError, OSError) as exc:
            raise write_error(self.path, exc) from None


def count_frames(path: Path) -> int:
    """Frames that can be read back from a video file (its packets, without decoding)."""
    import av

    count = 0
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(video=0):
                count += packet.size > 0
    except (av.FFmpegError, OSError):  # a cut-off tail: what was read before it counts
        pass
    return count


# --- lossless depth -------------------------------------------------------------------------------


def segment_path(path: Path, segment: int) -> Path:
    """The file of a recording's ``segment`` (1: ``path`` itself, 2: ``name.part2.mkv``, …)."""
    return path if segment == 1 else path.with_name(f"{path.stem}.part{segment}{path.suffix}")


def recording_files(path: Path) -> list[Path]:
    """The files a lossless recording named ``path`` would replace: the file and every
    ``name.partN`` segment beside it (of any recording)."""
    parts = path.parent.glob(f"{glob.escape(path.stem)}.part[0-9]*{glob.escape(path.suffix)}")
    return ([path] if path.exists() else []) + sorted(parts)


def _valid(depth: np.ndarray, kind: DepthKind) -> np.ndarray:
    """The pixels that hold a depth (finite; metric depth also > 0)."""
    valid = np.isfinite(depth)
    if kind is DepthKind.METRIC_METERS:
        valid &= depth > 0
    return valid


def metric_unit(largest: float) -> float:
    """The finest of :data:`METRIC_UNITS` whose 65534 steps reach ``largest`` metres (the
    coarsest when none does)."""
    fits = [unit for unit in METRIC_UNITS if unit * (LARGEST - 1) >= largest]
    return fits[0] if fits else METRIC_UNITS[-1]


def depth_unit(
    kind: DepthKind, largest: float | None, normalised: bool = False
) -> tuple[float, int]:
    """(unit, offset) for depth reaching ``largest`` (a declared range, or what a frame shows):
    see the module docstring. ``normalised``: relative depth that lies within 0..1."""
    if kind is DepthKind.METRIC_METERS:
        return metric_unit(largest or 0.0), 0
    top = 1.0 if normalised else RELATIVE_HEADROOM * max(largest or 0.0, 1e-6)
    return top / (LARGEST - 1), 1


class DepthRecorder:
    """Writes depth maps to 16-bit lossless video (FFV1/MKV or FFVHuff/NUT), frame by frame,
    each pixel in the recording's unit (:func:`depth_unit`); a new segment file each time the
    frame size changes or a frame goes beyond the unit's range (a coarser unit), listed in
    :attr:`segments` with :attr:`segment_units`. ``metric_max``: the largest metric depth
    expected (the model's ``max_depth``): the first unit reaches it; ``relative_max``: the
    relative value stored as the largest one. Without them, the first valid frame decides."""

    def __init__(
        self,
        path: Path,
        fps: float,
        relative_max: float | None = None,
        metric_max: float | None = None,
    ) -> None:
        self.path = path
        self.stored_as = lossless_format(path)
        self.fps = fps
        self.relative_max = relative_max
        self.metric_max = metric_max
        self.unit: float | None = None
        self.offset = 0
        self.frames = 0
        #: Pixels beyond the coarsest unit's range (stored as the largest value).
        self.out_of_range = 0
        self.segments: list[Path] = []
        #: The unit of each segment (metres for metric depth).
        self.segment_units: list[float] = []
        self.recording_id = uuid.uuid4().hex
        self._writer: VideoWriter | None = None
        self._writer_unit: float | None = None
        self._kind: DepthKind | None = None
        #: (shape, timestamp) of invalid frames that came before the unit could be chosen.
        self._pending: list[tuple[tuple[int, ...], float]] = []

    def _declared_max(self, kind: DepthKind) -> float | None:
        return self.metric_max if kind is DepthKind.METRIC_METERS else self.relative_max

    def _choose_unit(self, depth: np.ndarray, kind: DepthKind) -> None:
        self._kind = kind
        declared = self._declared_max(kind)
        if declared is not None and kind is DepthKind.METRIC_METERS:
            self.unit, self.offset = metric_unit(declared), 0
        elif declared is not None:
            self.unit, self.offset = declared / (LARGEST - 1), 1
        else:
            valid = depth[_valid(depth, kind)]
            normalised = bool(valid.size) and valid.min() >= 0.0 and valid.max() <= 1.0
            largest = float(valid.max()) if valid.size else None
            self.unit, self.offset = depth_unit(kind, largest, normalised)
        log.debug("video: lossless unit %g, offset %d (%s)", self.unit, self.offset, kind.value)

    def _coarsen(self, kind: DepthKind, largest: float) -> bool:
        """A coarser unit that reaches ``largest`` (from the next segment on); False when there
        is none (metric depth beyond the coarsest unit)."""
        assert self.unit is not None
        unit = depth_unit(kind, largest)[0]
        if unit <= self.unit:
            return False
        metric = kind is DepthKind.METRIC_METERS
        option = "metric_max" if metric else "relative_max"
        log.warning(
            "warning: video: frame %d reaches %.4g%s, beyond the %.4g%s of the lossless "
            "recording's steps of %s: it continues in %s in steps of %s (set %s: %.4g on the "
            "video sink to record in one file from the start)",
            self.frames,
            largest,
            " m" if metric else "",
            (LARGEST - self.offset) * self.unit,
            " m" if metric else "",
            _unit_text(self.unit, kind),
            segment_path(self.path, len(self.segments) + 1),
            _unit_text(unit, kind),
            option,
            largest,
        )
        self.unit = unit
        return True

    def _new_segment(self, height: int, width: int) -> VideoWriter:
        assert self._kind is not None and self.unit is not None
        if not self.segments:
            # Replacing a recording (``existing: overwrite``) replaces all of it: an older
            # recording's later segments would otherwise be left under this name.
            for stale in recording_files(self.path):
                if stale != self.path:
                    stale.unlink(missing_ok=True)
        self.segments.append(segment_path(self.path, len(self.segments) + 1))
        self.segment_units.append(self.unit)
        metric = self._kind is DepthKind.METRIC_METERS
        metadata = {
            "RECORDING_ID": self.recording_id,
            "SEGMENT": str(len(self.segments)),
            "DEPTH_KIND": self._kind.value,
            # value = (stored - offset) / scale; stored 0 = invalid
            "DEPTH_SCALE": repr(1.0 / self.unit),
            "DEPTH_OFFSET": str(self.offset),
            "DEPTH_INVALID": str(INVALID),
            "DEPTH_UNITS": f"{self.unit * 1000:g} mm" if metric else f"{self.unit:g} (relative)",
        }
        return VideoWriter(
            self.segments[-1],
            container_format=self.stored_as.container,
            codec=self.stored_as.codec,
            pix_fmt="gray16le",
            rate=frame_rate(self.fps),
            time_base=TIME_BASE,
            container_options=self.stored_as.container_options,
            codec_options=self.stored_as.codec_options,
            metadata=metadata,
            threads=1,  # one thread: no frame delay, and the model keeps the other cores
        )

    def _scaled(self, depth: np.ndarray, invalid: np.ndarray) -> np.ndarray:
        assert self.unit is not None
        scaled = np.divide(depth, np.float32(self.unit), dtype=np.float32)
        np.rint(scaled, out=scaled)
        scaled += np.float32(self.offset)
        np.copyto(scaled, np.float32(INVALID), where=invalid)
        return scaled

    def encode(self, depth: np.ndarray, kind: DepthKind) -> np.ndarray:
        """The stored 16-bit values of ``depth`` (0 where invalid), in float32 passes; a frame
        beyond the unit's range moves the recording to a coarser unit first."""
        invalid = ~_valid(depth, kind)
        scaled = self._scaled(depth, invalid)
        beyond = np.count_nonzero(scaled > LARGEST)
        if beyond:
            largest = float(np.max(depth, where=~invalid, initial=-np.inf))
            if self._coarsen(kind, largest):
                scaled = self._scaled(depth, invalid)
                beyond = np.count_nonzero(scaled > LARGEST)
        if beyond:
            assert self.unit is not None
            if not self.out_of_range:
                log.warning(
                    "warning: video: depth up to %.4g beyond the coarsest step of %s (%.4g): "
                    "stored as %.4g",
                    float(np.max(depth, where=~invalid, initial=-np.inf)),
                    self.path,
                    (LARGEST - self.offset) * self.unit,
                    (LARGEST - self.offset) * self.unit,
                )
            self.out_of_range += beyond
        np.clip(scaled, INVALID + 1, LARGEST, out=scaled)
        stored = scaled.astype(np.uint16)
        np.copyto(stored, np.uint16(INVALID), where=invalid)
        return stored

    def write(self, depth: np.ndarray, kind: DepthKind, timestamp: float) -> None:
        if self.unit is None:
            if self._declared_max(kind) is None and not _valid(depth, kind).any():
                # Nothing valid to size the unit by yet: keep the frame's place (it is all
                # invalid, whatever the unit) and choose with the first valid frame.
                self._pending.append((depth.shape, timestamp))
                self._kind = kind
                return
            self._choose_unit(depth, kind)
            self._write_pending()
        self._write_stored(self.encode(depth, kind), timestamp)

    def _write_pending(self) -> None:
        """The all-invalid frames held until a unit was chosen: stored as 0 (invalid)."""
        for shape, pending_time in self._pending:
            self._write_stored(np.zeros(shape, np.uint16), pending_time)
        self._pending.clear()

    def _write_stored(self, stored: np.ndarray, timestamp: float) -> None:
        if self._writer is not None and stored.shape != self._writer.size:
            log.info(
                "video: depth size changed from %d×%d to %d×%d at frame %d: the lossless "
                "recording continues in %s (one frame size per file)",
                *self._writer.size,  # type: ignore[misc]
                *stored.shape,
                self.frames,
                segment_path(self.path, len(self.segments) + 1),
            )
            self._close_segment()
        elif self._writer is not None and self.unit != self._writer_unit:
            self._close_segment()  # a coarser unit (said by _coarsen)
        if self._writer is None:
            self._writer = self._new_segment(*stored.shape)
            self._writer_unit = self.unit
        self._writer.write(stored, "gray16le", timestamp)
        self.frames += 1

    def _close_segment(self) -> None:
        assert self._writer is not None
        self._writer.close()
        self._writer = None

    def close(self) -> None:
        if self._pending:  # every frame was invalid: any unit stores them
            self.unit, self.offset = 1.0 / (LARGEST - 1), 1
            self._write_pending()
        if self._writer is not None:
            self._writer.close()
        if len(self.segments) > 1:
            names = ", ".join(path.name for path in self.segments)
            log.info("video: lossless recording in %d segments: %s", len(self.segments), names)


def _unit_text(unit: float, kind: DepthKind) -> str:
    return f"{unit * 1000:g} mm" if kind is DepthKind.METRIC_METERS else f"{unit:.3g}"


def read_depth_recording(path: str | Path) -> Iterator[tuple[float, np.ndarray]]:
    """(timestamp seconds, float32 depth H×W) for every frame of a recording; metric
    recordings come back in metres, invalid pixels as NaN. A truncated file yields every
    complete frame."""
    import av

    path = Path(path)
    with _open_recording(path) as container:
        metadata = _metadata_of(container)
        if "DEPTH_SCALE" not in metadata:
            raise EdgedepthError(f"{path}: not an edgedepth depth recording (no DEPTH_SCALE tag)")
        scale = np.float32(float(metadata["DEPTH_SCALE"]))
        offset = int(metadata.get("DEPTH_OFFSET", 0))
        # Recordings from before DEPTH_INVALID stored 0 for no measurement too, as a value.
        invalid = int(metadata["DEPTH_INVALID"]) if "DEPTH_INVALID" in metadata else None
        try:
            for frame in container.decode(video=0):
                stored = frame.to_ndarray(format="gray16le")
                depth = (stored.astype(np.float32) - np.float32(offset)) / scale
                if invalid is not None:
                    depth[stored == invalid] = np.nan
                yield float(frame.time or 0.0), depth
        except av.error.InvalidDataError:  # the cut-off tail of a killed recording
            return


def _open_recording(path: Path) -> av.container.InputContainer:
    import av

    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise EdgedepthError(f"{path}: cannot open depth recording: {exc}") from None


def _metadata_of(container: av.container.InputContainer) -> dict[str, str]:
    return {key.upper(): value for key, value in container.metadata.items()}


def _metadata(path: Path) -> dict[str, str]:
    with _open_recording(path) as container:
        return _metadata_of(container)


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
    return DepthKind(_metadata(Path(path))["DEPTH_KIND"])
