"""``mcap``: record RGB, depth and camera info as a ROS 2 MCAP file (``ros2 bag``, Foxglove,
RViz), crash-safe: a killed run loses at most the open chunk
(:mod:`edgedepth.topic.mcap_recording`).

Topics (defaults): ``/camera/image_raw`` (Image ``rgb8``) or ``/camera/image_raw/compressed``
(CompressedImage ``jpeg``), ``/camera/camera_info``; ``/depth/image`` (metric: ``32FC1`` metres
or ``16UC1`` millimetres), ``/depth/relative_disparity`` or ``/depth/relative_depth``
(relative: ``relative_disparity_32FC1`` / ``relative_depth_32FC1``), ``/depth/camera_info``;
with ``points: true``, ``/depth/points`` (PointCloud2, as depth_image_proc makes it). Stamps are
the wall clock of capture unless ``stamp: media``. Messages are described in
:mod:`edgedepth.topic.ros2`; what rosbag2 needs beside them in :mod:`edgedepth.topic.rosbag2`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field, field_validator

import edgedepth
from edgedepth.api.frame import Frame
from edgedepth.api.options import CameraIntrinsics, HorizontalFov, OutputPath
from edgedepth.api.outputs import WritesFiles
from edgedepth.api.stages import BuildContext
from edgedepth.media.pointcloud import check_points
from edgedepth.topic.mcap_recording import DEFAULT_CHUNK_SIZE, Compression, McapRecorder
from edgedepth.topic.ros2 import (
    DepthEncoding,
    FrameToMessages,
    RelativeEncoding,
    RgbFormat,
    StampClock,
    check_topic_name,
)

log = logging.getLogger("edgedepth")


class McapSinkOptions(WritesFiles):
    path: OutputPath
    """The .mcap file to write (ROS 2 profile, CDR messages)."""
    rgb: RgbFormat = "raw"
    """RGB frames: ``raw`` (Image rgb8), ``jpeg`` (CompressedImage) or ``none``."""
    jpeg_quality: int = Field(90, ge=1, le=100)
    """JPEG quality of ``rgb: jpeg``."""
    depth: bool = True
    """Record the depth images."""
    depth_encoding: DepthEncoding = "32FC1"
    """Metric depth: 32FC1 metres (NaN: no measurement) or 16UC1 millimetres (0: none, and
    beyond 65.535 m) (REP-117/118)."""
    relative_encoding: RelativeEncoding = "named"
    """Relative depth's Image encoding: ``named`` (``relative_disparity_32FC1`` /
    ``relative_depth_32FC1``: no ROS node takes it for metres) or ``32FC1`` (viewable in RViz and
    Foxglove; relative only by its topic name and the channel's ``depth_kind``)."""
    camera_info: bool = True
    """CameraInfo beside each image topic, when intrinsics are known."""
    intrinsics: CameraIntrinsics | None = None
    """Intrinsics of the captured frames; omitted: the source's (the synthetic source has
    them), else ``horizontal_fov``."""
    horizontal_fov: HorizontalFov | None = None
    """Degrees: a centred pinhole camera, for sources that report no intrinsics."""
    points: bool = False
    """Record the PointCloud2 of metric depth on ``points_topic`` (organized, NaN where invalid,
    as depth_image_proc makes it); needs intrinsics."""
    points_topic: str = "depth/points"
    """Topic of the point clouds."""
    points_rgb: bool | None = None
    """Colour the points (``rgb`` field, depth_image_proc's xyzrgb); omitted: when RGB frames
    are recorded."""
    rgb_topic: str = "camera/image_raw"
    """Topic of the RGB frames (``/compressed`` is appended for JPEG)."""
    depth_topic: str = "depth/image"
    """Topic of metric depth."""
    relative_topic: str | None = None
    """Relative depth; omitted: ``relative_disparity``/``relative_depth`` beside ``depth_topic``."""
    frame_id: str = "camera"
    """``header.frame_id`` of every message."""
    stamp: StampClock = "epoch"
    """Header stamps: ``epoch`` (the wall clock at capture, as a ROS driver stamps) or ``media``
    (seconds from the start of the stream)."""
    chunk_size: int = Field(DEFAULT_CHUNK_SIZE, ge=4096, le=256 * 1024 * 1024)
    """Bytes of messages per chunk: a kill loses at most the open chunk."""
    compression: Compression = "zstd"
    """Chunk compression."""

    @field_validator("path")
    @classmethod
    def _mcap_name(cls, path: Path) -> Path:
        # ros2 bag, Foxglove and RViz pick the storage by the extension: .bag is ROS 1 (or a
        # rosbag2 folder), .db3 SQLite.
        if path.suffix.lower() != ".mcap":
            raise ValueError(f"{path.name}: an MCAP recording is named .mcap")
        return path

    @field_validator("rgb_topic", "depth_topic", "relative_topic", "points_topic")
    @classmethod
    def _ros_name(cls, value: str | None) -> str | None:
        return value if value is None else check_topic_name(value)


class McapSink:
    """Writes each frame's messages to the recording, stamped with the frame's time."""

    def __init__(self, options: McapSinkOptions, context: BuildContext | None) -> None:
        self.options = options
        intrinsics = options.intrinsics.intrinsics if options.intrinsics else None
        if options.points:
            check_points(context, intrinsics, options.horizontal_fov)
        self.to_messages = FrameToMessages(
            frame_id=options.frame_id,
            depth_topic=options.depth_topic,
            relative_topic=options.relative_topic,
            depth_encoding=options.depth_encoding,
            relative_encoding=options.relative_encoding,
            depth=options.depth,
            rgb=options.rgb,
            rgb_topic=options.rgb_topic,
            jpeg_quality=options.jpeg_quality,
            camera_info=options.camera_info,
            intrinsics=intrinsics,
            horizontal_fov=options.horizontal_fov,
            clock=options.stamp,
            points=options.points,
            points_topic=options.points_topic,
            points_rgb=options.rgb != "none" if options.points_rgb is None else options.points_rgb,
        )
        self.recorder = McapRecorder(
            options.path,
            chunk_size=options.chunk_size,
            compression=options.compression,
            library=f"edgedepth {edgedepth.__version__}",
        )

    def write(self, frame: Frame) -> None:
        depth_topic = (
            self.to_messages.depth_topic_for(frame.depth_kind) if frame.depth_kind else None
        )
        messages = self.to_messages(frame)
        if not messages:
            return
        stamp = messages[0].fields["header"]["stamp"]  # one stamp for a frame's messages
        time_ns = stamp["sec"] * 1_000_000_000 + stamp["nanosec"]
        for message in messages:
            metadata = {}
            if message.topic == depth_topic and frame.depth_kind is not None:
                metadata["depth_kind"] = frame.depth_kind.value
            self.recorder.write(message, time_ns, metadata)

    def close(self) -> None:
        self.recorder.close()
        log.info("mcap: %d messages in %s", self.recorder.messages, self.options.path)


def check_mcap(options: McapSinkOptions, context: BuildContext) -> None:
    """``edgedepth check``: points need metric depth and intrinsics (nothing is written)."""
    if options.points:
        given = options.intrinsics.intrinsics if options.intrinsics else None
        check_points(context, given, options.horizontal_fov)


@edgedepth.hookimpl
def register_sinks(register):
    register(
        "mcap",
        McapSinkOptions,
        McapSink,
        description="ROS 2 MCAP recording (RGB, depth 32FC1/16UC1, CameraInfo, PointCloud2)",
        check=check_mcap,
    )
