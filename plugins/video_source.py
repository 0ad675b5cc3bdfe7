"""``video``: any FFmpeg-readable video file, decoded with PyAV."""

from __future__ import annotations

import time
from collections.abc import Iterator

import av

import edgedepth
from edgedepth.config import InputPath, StrictModel
from edgedepth.errors import EdgedepthError
from edgedepth.frame import Frame
from edgedepth.stages import BuildContext, SourceInfo


class VideoOptions(StrictModel):
    path: InputPath
    #: Index among the file's video streams.
    stream: int = 0


class VideoSource:
    def __init__(self, options: VideoOptions, context: BuildContext) -> None:
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
        self._stream.thread_type = "AUTO"  # FFmpeg decodes on its own threads, outside the GIL
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
        for index, decoded in enumerate(self._container.decode(self._stream)):
            image = decoded.to_ndarray(format="rgb24")
            if decoded.time is not None:
                timestamp = float(decoded.time)
            else:
                timestamp = index / self._fps if self._fps else float(index)
            yield Frame(
                index=index, timestamp=timestamp, image=image, captured_at=time.perf_counter()
            )

    def close(self) -> None:
        self._container.close()


@edgedepth.hookimpl
def register_sources(register):
    register("video", VideoOptions, VideoSource, description="a video file (PyAV / FFmpeg)")
