"""``video``: a playable H.264 mp4 of the colourised depth (or RGB | depth side by side) and,
optionally, a lossless 16-bit depth recording (:mod:`edgedepth.recording`).

The mp4 is fragmented (a fragment per frame) and flushed per packet, so a killed run still
leaves a playable file up to its last frame (a plain mp4 is unreadable without its ``moov``).
"""

from __future__ import annotations

from typing import Literal

import av
import numpy as np
from pydantic import Field, model_validator

import edgedepth
from edgedepth.colorize import ColormapName, DisplayRange, colorize, colour_bar, side_by_side
from edgedepth.config import OutputPath, StrictModel
from edgedepth.errors import EdgedepthError
from edgedepth.frame import Frame
from edgedepth.recording import DepthRecorder, frame_rate
from edgedepth.stages import BuildContext


class VideoSinkOptions(StrictModel):
    #: The colourised mp4 (H.264).
    path: OutputPath | None = None
    layout: Literal["depth", "side-by-side"] = "depth"
    colormap: ColormapName = "turbo"
    #: Fixed display range (metres for metric depth); omitted: a smoothed range.
    range: tuple[float, float] | None = None
    #: H.264 quality (0 = lossless, 18–23 = visually good).
    crf: int = Field(20, ge=0, le=51)
    #: x264 speed preset: faster presets leave more CPU to the backend (ultrafast … veryslow).
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
        "veryslow",
    ] = "veryfast"  # fmt: skip
    #: Frame rate of the file; omitted: the source's (29.97 stays 29.97).
    fps: float | None = Field(None, gt=0)
    #: Lossless 16-bit depth recording (.mkv, FFV1): metric in millimetres.
    lossless: OutputPath | None = None
    #: Relative depth only: the value stored as 65535 (default: twice the first frame's max).
    relative_max: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _something_to_write(self) -> VideoSinkOptions:
        if self.path is None and self.lossless is None:
            raise ValueError("give `path` (mp4), `lossless` (mkv), or both")
        return self


class VideoSink:
    def __init__(self, options: VideoSinkOptions, context: BuildContext) -> None:
        self.options = options
        source_fps = context.source.fps if context.source else None
        self.fps = frame_rate(options.fps or source_fps or 30.0)
        self.display_range = DisplayRange(fixed=options.range)
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._last_pts = -1
        self.recorder = (
            DepthRecorder(options.lossless, float(self.fps), options.relative_max)
            if options.lossless
            else None
        )

    def _open(self, height: int, width: int) -> None:
        assert self.options.path is not None
        try:
            container = av.open(
                str(self.options.path),
                "w",
                format="mp4",
                options={
                    "movflags": "frag_keyframe+empty_moov+default_base_moof",
                    # A fragment per frame: a kill loses at most the frames in flight.
                    "frag_duration": "1",
                    "flush_packets": "1",
                },
            )
        except (av.FFmpegError, OSError) as exc:
            raise EdgedepthError(f"{self.options.path}: cannot create video: {exc}") from None
        stream = container.add_stream("libx264", rate=self.fps)
        # yuv420p needs even sizes; a short GOP keeps seeking cheap.
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "crf": str(self.options.crf),
            "preset": self.options.preset,
            "tune": "zerolatency",
            "g": str(max(1, round(float(self.fps) / 2))),
        }
        self._container, self._stream = container, stream

    def write(self, frame: Frame) -> None:
        if self.recorder is not None:
            self.recorder.write(frame.depth, frame.depth_kind, frame.timestamp)
        if self.options.path is None:
            return
        low, high = self.display_range.update(frame.depth)
        picture = colorize(frame.depth, frame.depth_kind, low, high, self.options.colormap)
        if self.options.layout == "side-by-side":
            bar = colour_bar(frame.height, frame.depth_kind, low, high, self.options.colormap)
            picture = side_by_side(frame.image, picture, bar)
        if self._container is None:
            self._open(*picture.shape[:2])
        assert self._stream is not None and self._container is not None
        if picture.shape[:2] != (self._stream.height, self._stream.width):
            picture = np.pad(
                picture,
                (
                    (0, self._stream.height - picture.shape[0]),
                    (0, self._stream.width - picture.shape[1]),
                    (0, 0),
                ),
                mode="edge",
            )
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
        # Timestamps from the frames (live runs with drops stay in real time), kept increasing.
        pts = max(round(frame.timestamp * self.fps), self._last_pts + 1)
        video_frame.pts, video_frame.time_base = pts, 1 / self.fps
        self._last_pts = pts
        self._container.mux(self._stream.encode(video_frame))

    def close(self) -> None:
        try:
            if self._container is not None:
                try:
                    self._container.mux(self._stream.encode())
                finally:
                    self._container.close()
        finally:
            if self.recorder is not None:
                self.recorder.close()


@edgedepth.hookimpl
def register_sinks(register):
    register(
        "video",
        VideoSinkOptions,
        VideoSink,
        description="colourised H.264 mp4 and/or lossless 16-bit depth (FFV1/MKV)",
    )
