"""``video``: a playable H.264 mp4 of the colourised depth (or RGB | depth side by side) and,
optionally, a lossless 16-bit depth recording (:mod:`edgedepth.recording`).

The mp4 is fragmented (a fragment per frame) and flushed per packet, so a killed run still
leaves a playable file up to its last frame (a plain mp4 is unreadable without its ``moov``).

Frames of different sizes (photos of different sizes, a camera that changes mode): a video has
one frame size, that of the first picture. A picture of another size is scaled to fit inside it,
aspect ratio kept, centred and padded with black (letterbox); a warning says so once. The
lossless recording is never rescaled: it continues in a new segment file per size
(``depth.mkv``, ``depth.part2.mkv``, …; read them all with
:func:`edgedepth.recording.read_depth_segments`).
"""

from __future__ import annotations

import logging
from typing import Literal

import av
import numpy as np
from pydantic import Field, model_validator

import edgedepth
from edgedepth.colorize import (
    ColormapName,
    DisplayRange,
    caption,
    colorize,
    colour_bar,
    side_by_side,
)
from edgedepth.config import OutputPath, StrictModel
from edgedepth.errors import EdgedepthError
from edgedepth.frame import Frame
from edgedepth.imageops import Letterbox, resize_rgb
from edgedepth.recording import DepthRecorder, frame_rate
from edgedepth.stages import BuildContext, SinkOutput

log = logging.getLogger("edgedepth")


class VideoSinkOptions(StrictModel):
    path: OutputPath | None = None
    """The colourised mp4 (H.264)."""
    layout: Literal["depth", "side-by-side"] = "depth"
    """The colourised depth alone, or RGB | depth | colour bar."""
    colormap: ColormapName = "turbo"
    """Colour map of the depth, near at its warm (bright) end."""
    range: tuple[float, float] | None = None
    """Fixed display range (metres for metric depth); omitted: a smoothed range."""
    crf: int = Field(20, ge=0, le=51)
    """H.264 quality (0 = lossless, 18–23 = visually good)."""
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
        "veryslow",
    ] = "veryfast"  # fmt: skip
    """x264 speed preset: faster presets leave more CPU to the backend (ultrafast … veryslow)."""
    fps: float | None = Field(None, gt=0)
    """Frame rate of the file; omitted: the source's (29.97 stays 29.97)."""
    lossless: OutputPath | None = None
    """Lossless 16-bit depth recording (.mkv, FFV1): metric in millimetres."""
    relative_max: float | None = Field(None, gt=0)
    """Relative depth only: the value stored as 65535 (default: twice the first frame's max)."""

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
        #: Captions on every picture (e.g. random weights), from the stages built before.
        self.notes = list(context.notes)
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        #: (height, width) of the first picture: every later one is fitted into it.
        self.picture_size: tuple[int, int] | None = None
        self._warned_size = False
        self._last_pts = -1
        self.pictures = 0
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
        picture = caption(picture, self.notes)
        if self._container is None:
            self.picture_size = picture.shape[:2]
            self._open(*picture.shape[:2])
        assert self._stream is not None and self._container is not None
        if picture.shape[:2] != self.picture_size:
            picture = self._fit(picture, frame.index)
        if picture.shape[:2] != (self._stream.height, self._stream.width):
            # yuv420p needs even sides: repeat the last row / column.
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
        self.pictures += 1

    def _fit(self, picture: np.ndarray, index: int) -> np.ndarray:
        """Letterbox a picture of another size into the first picture's size."""
        assert self.picture_size is not None
        if not self._warned_size:
            log.warning(
                "video: frame %d is %d×%d but %s is %d×%d: pictures of another size are scaled "
                "to fit and padded with black (the lossless recording keeps every size)",
                index,
                picture.shape[1],
                picture.shape[0],
                self.options.path,
                self.picture_size[1],
                self.picture_size[0],
            )
            self._warned_size = True
        box = Letterbox.fit(picture.shape[:2], self.picture_size)
        shrink = box.content_height < picture.shape[0]
        content = resize_rgb(
            picture, (box.content_height, box.content_width), "area" if shrink else "bilinear"
        )
        return box.paste(content, np.zeros((*self.picture_size, 3), np.uint8))

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

    def outputs(self) -> list[SinkOutput]:
        """The mp4 and the lossless recording, for the run summary."""
        written = []
        if self.options.path is not None and self.pictures:
            written.append(SinkOutput(self.options.path, self.pictures, "colourised H.264"))
        if self.recorder is not None and self.recorder.segments:
            parts = len(self.recorder.segments)
            more = f", {parts} files: one per frame size" if parts > 1 else ""
            what = f"lossless 16-bit depth, FFV1{more}"
            written.append(SinkOutput(self.recorder.path, self.recorder.frames, what))
        return written


@edgedepth.hookimpl
def register_sinks(register):
    register(
        "video",
        VideoSinkOptions,
        VideoSink,
        description="colourised H.264 mp4 and/or lossless 16-bit depth (FFV1/MKV)",
    )
