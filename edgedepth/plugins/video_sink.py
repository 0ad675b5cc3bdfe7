"""``video``: a playable H.264 mp4 of the colourised depth (or RGB | depth side by side) and,
optionally, a lossless 16-bit depth recording (:mod:`edgedepth.media.recording`).

The mp4 is fragmented (a fragment per frame) and flushed per packet, so a killed run still
leaves a playable file up to its last frame (a plain mp4 is unreadable without its ``moov``).

Frames of different sizes (photos of different sizes, a camera that changes mode): a video has
one frame size, that of the first picture. A picture of another size is scaled to fit inside it,
aspect ratio kept, centred and padded with black (letterbox); a warning says so once. The
lossless recording is never rescaled: it continues in a new segment file per size
(``depth.mkv``, ``depth.part2.mkv``, …; read them all with
:func:`edgedepth.media.recording.read_depth_segments`).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

import edgedepth
from edgedepth.api.frame import Frame
from edgedepth.api.options import OutputPath
from edgedepth.api.outputs import WritesFiles, existing_files
from edgedepth.api.stages import BuildContext, SinkOutput
from edgedepth.media.colorize import (
    ColormapName,
    DisplayRange,
    caption,
    colorize,
    colour_bar,
    side_by_side,
)
from edgedepth.media.imageops import Letterbox, resize_rgb
from edgedepth.media.recording import (
    LOSSLESS_FORMATS,
    DepthRecorder,
    VideoWriter,
    count_frames,
    frame_rate,
    recording_files,
)

log = logging.getLogger("edgedepth")

#: Names an MP4 file goes by (players pick the demuxer by them).
MP4_SUFFIXES = (".mp4", ".m4v")


class VideoSinkOptions(WritesFiles):
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
    ] = "superfast"  # fmt: skip
    """x264 speed preset: faster presets leave more CPU to the backend (ultrafast … veryslow;
    640×480 depth: ~4 ms a frame superfast, ~6 veryfast, ~3 ultrafast; bench/sinks.py)."""
    fps: float | None = Field(None, gt=0)
    """Frame rate of the file; omitted: the source's (29.97 stays 29.97)."""
    lossless: OutputPath | None = None
    """Lossless 16-bit depth recording: .mkv (FFV1) or .nut (FFVHuff: a tenth of the CPU on
    noisy depth, files ~20 % larger); metric in steps of 1 mm (2 mm for a model that reaches
    beyond 65 m …), invalid pixels marked, nothing clipped: a frame beyond the unit's range
    continues in a new segment in a coarser unit (see :mod:`edgedepth.media.recording`)."""
    metric_max: float | None = Field(None, gt=0)
    """Metric depth only: the largest depth to expect, metres; sets the lossless unit (the
    finest step that reaches it). Default: the model's declared range, else the first frame's
    largest depth."""
    relative_max: float | None = Field(None, gt=0)
    """Relative depth only: the largest value stored (default: 1 for maps normalised to 0..1,
    else 4 × the first frame's maximum); a larger value continues the recording in a new
    segment with a coarser unit."""

    def occupied(self, field: str, path: Path) -> list[Path]:
        # A lossless recording is its file and its segments (name.part2.mkv, …).
        return recording_files(path) if field == "lossless" else existing_files(path)

    @model_validator(mode="after")
    def _something_to_write(self) -> VideoSinkOptions:
        if self.path is None and self.lossless is None:
            raise ValueError("give `path` (mp4), `lossless` (mkv), or both")
        if self.path is not None and self.path.suffix.lower() not in MP4_SUFFIXES:
            raise ValueError(
                f"path: {self.path.name}: the colourised video is an MP4 file: name it .mp4"
            )
        if self.lossless is not None and self.lossless.suffix.lower() not in LOSSLESS_FORMATS:
            raise ValueError(
                f"lossless: {self.lossless.name}: use .mkv (FFV1) or .nut (FFVHuff, less CPU)"
            )
        return self


class VideoSink:
    def __init__(self, options: VideoSinkOptions, context: BuildContext) -> None:
        self.options = options
        source_fps = context.source.fps if context.source else None
        self.fps = frame_rate(options.fps or source_fps or 30.0)
        self.display_range = DisplayRange(fixed=options.range)
        #: Captions on every picture (e.g. random weights), from the stages built before.
        self.notes = list(context.notes)
        #: (height, width) of the first picture: every later one is fitted into it.
        self.picture_size: tuple[int, int] | None = None
        self._warned_size = False
        self.video = (
            VideoWriter(
                options.path,
                container_format="mp4",
                codec="libx264",
                pix_fmt="yuv420p",
                rate=self.fps,
                time_base=Fraction(1) / self.fps,
                container_options={
                    "movflags": "frag_keyframe+empty_moov+default_base_moof",
                    # A fragment per frame: a kill loses at most the frames in flight.
                    "frag_duration": "1",
                },
                codec_options={
                    "crf": str(options.crf),
                    "preset": options.preset,
                    "tune": "zerolatency",
                    "g": str(max(1, round(float(self.fps) / 2))),  # short GOP: cheap seeking
                },
                # One thread: the least CPU a frame (no slice threads to feed), no frame delay,
                # and the backend keeps the other cores.
                threads=1,
            )
            if options.path
            else None
        )
        known_range = context.depth_range[1] if context.depth_range else None
        self.recorder = (
            DepthRecorder(
                options.lossless,
                float(self.fps),
                relative_max=options.relative_max,
                metric_max=options.metric_max or known_range,
            )
            if options.lossless
            else None
        )

    def write(self, frame: Frame) -> None:
        assert frame.depth is not None and frame.depth_kind is not None
        if self.recorder is not None:
            self.recorder.write(frame.depth, frame.depth_kind, frame.timestamp)
        if self.video is None:
            return
        low, high = self.display_range.update(frame.depth)
        side = self.options.layout == "side-by-side"
        # Alone, the depth goes to the encoder as RGBA: one 32-bit lookup a pixel, and the
        # encoder's colour conversion reads it as it is.
        picture = colorize(
            frame.depth, frame.depth_kind, low, high, self.options.colormap, 3 if side else 4
        )
        if side:
            bar = colour_bar(frame.height, frame.depth_kind, low, high, self.options.colormap)
            picture = side_by_side(frame.image, picture, bar)
        picture = caption(picture, self.notes)
        if self.picture_size is None:
            self.picture_size = picture.shape[:2]
        elif picture.shape[:2] != self.picture_size:
            picture = self._fit(picture, frame.index)
        # yuv420p needs even sides: repeat the last row / column.
        height, width = picture.shape[:2]
        if height % 2 or width % 2:
            picture = np.pad(picture, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        self.video.write(picture, "rgba" if picture.shape[2] == 4 else "rgb24", frame.timestamp)

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
        picture = picture[..., :3]  # drop the alpha of an RGBA depth picture
        box = Letterbox.fit(picture.shape[:2], self.picture_size)
        shrink = box.content_height < picture.shape[0]
        content = resize_rgb(
            picture, (box.content_height, box.content_width), "area" if shrink else "bilinear"
        )
        return box.paste(content, np.zeros((*self.picture_size, 3), np.uint8))

    def close(self) -> None:
        try:
            if self.video is not None:
                self.video.close()
        finally:
            if self.recorder is not None:
                self.recorder.close()

    def outputs(self) -> list[SinkOutput]:
        """What the files hold, read back (after a failure, fewer than were written)."""
        written = []
        if self.video is not None and self.video.frames:
            written.append(
                SinkOutput(self.video.path, count_frames(self.video.path), "colourised H.264")
            )
        if self.recorder is not None:
            recorder = self.recorder
            for segment, unit in zip(recorder.segments, recorder.segment_units, strict=True):
                what = "lossless 16-bit depth, " + (
                    f"{unit * 1000:g} mm steps"
                    if recorder.offset == 0
                    else f"steps of {unit:.3g} (relative)"
                )
                written.append(SinkOutput(segment, count_frames(segment), what))
        return written


@edgedepth.hookimpl
def register_sinks(register):
    register(
        "video",
        VideoSinkOptions,
        VideoSink,
        description="colourised H.264 mp4 and/or lossless 16-bit depth (FFV1/MKV)",
    )
