"""``video``: any FFmpeg-readable video file, decoded with PyAV."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import edgedepth
from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import Frame
from edgedepth.api.options import InputPath, StrictModel
from edgedepth.api.stages import BuildContext, SourceInfo

log = logging.getLogger("edgedepth")


class VideoOptions(StrictModel):
    path: InputPath
    """The video file (anything FFmpeg reads), relative to the config."""
    stream: int = 0
    """Index among the file's video streams."""


class VideoSource:
    def __init__(self, options: VideoOptions, context: BuildContext) -> None:
        import av

        path = options.path
        try:
            self._container = av.open(str(path))
        except (av.FFmpegError, OSError) as exc:
            raise EdgedepthError(f"{path}: cannot open video: {exc}") from None
        streams = self._container.streams.video
        if len(streams) <= options.stream:
            self._container.close()
            raise EdgedepthError(f"{path}: no video stream #{options.stream} in this file")
        self._stream = streams[options.stream]
        if self._stream.codec_context is None:  # e.g. an mp4 cut inside its moov
            self._container.close()
            raise EdgedepthError(
                f"{path}: video stream #{options.stream} cannot be decoded (no codec or frame "
                "size in the file): the file is cut short or damaged"
            )
        self._stream.thread_type = "AUTO"  # FFmpeg decodes on its own threads, outside the GIL
        self._path = path
        self._duration = (
            float(self._container.duration) / av.time_base if self._container.duration else None
        )
        rate = self._stream.average_rate or self._stream.guessed_rate
        self._fps = float(rate) if rate else None
        self.info = SourceInfo(
            width=self._stream.codec_context.width,
            height=self._stream.codec_context.height,
            fps=self._fps,
            live=False,
            frame_count=self._stream.frames or None,
            description=str(path),
        )
        if not self.info.width or not self.info.height:
            self._container.close()
            raise EdgedepthError(f"{path}: unreadable video (no frame size in the stream)")

    def frames(self) -> Iterator[Frame]:
        import av

        index = 0
        last_time = 0.0
        try:
            for decoded in self._container.decode(self._stream):
                image = decoded.to_ndarray(format="rgb24")
                if decoded.time is not None:
                    timestamp = float(decoded.time)
                else:
                    timestamp = index / self._fps if self._fps else float(index)
                last_time = timestamp
                yield Frame(
                    index=index, timestamp=timestamp, image=image, captured_at=time.perf_counter()
                )
                index += 1
        except av.FFmpegError as exc:
            expected = f" of {self.info.frame_count}" if self.info.frame_count else ""
            raise EdgedepthError(
                f"{self._path}: unreadable after {index}{expected} frames ({last_time:.2f} s): "
                f"the file is truncated or damaged ({exc.strerror or exc})"
            ) from None
        self._warn_if_short(index, last_time)

    def _warn_if_short(self, decoded: int, last_time: float) -> None:
        """The container says how long the video is: a stream that ends well before that is
        a cut-off file, worth a warning even when FFmpeg ends it without an error."""
        expected = self.info.frame_count
        duration = self._duration
        period = 1.0 / self._fps if self._fps else 0.0
        if expected and decoded < expected - 1:
            log.warning(
                "warning: %s: %d of %d frames decoded: the file ends early (truncated?)",
                self._path,
                decoded,
                expected,
            )
        elif duration and period and last_time + 2 * period < duration - period:
            log.warning(
                "warning: %s: frames end at %.2f s of %.2f s: the file ends early (truncated?)",
                self._path,
                last_time,
                duration,
            )

    def close(self) -> None:
        self._container.close()


@edgedepth.hookimpl
def register_sources(register):
    register("video", VideoOptions, VideoSource, description="a video file (PyAV / FFmpeg)")
