"""ROS 2 messages without a ROS install: the ``sensor_msgs`` types edgedepth writes, their
definitions and type hashes, a frame turned into them, and their CDR encoding.

Types (definitions as in ``common_interfaces``, identical on Jazzy, Kilted and Rolling):
``sensor_msgs/msg/Image``, ``sensor_msgs/msg/CompressedImage``, ``sensor_msgs/msg/CameraInfo``,
``sensor_msgs/msg/PointCloud2`` and what they use (``std_msgs/msg/Header``,
``builtin_interfaces/msg/Time``, ``sensor_msgs/msg/RegionOfInterest``,
``sensor_msgs/msg/PointField``). Their RIHS01 type hashes (REP-2011, the hash that
``ros2 topic info -v`` prints and rmw_zenoh puts in its key expressions) are constants here; the
tests recompute them from these definitions with ``rosbags``.

Payloads are CDR as ROS 2 sends and records them: XCDR1 little endian, starting with the
4-byte encapsulation header ``00 01 00 00``, encoded by ``mcap-ros2-support`` (the extra
``edgedepth[ros2]``).

Depth (REP-118, REP-117): metric depth is ``32FC1`` metres, NaN where there is no measurement,
or ``16UC1`` millimetres, 0 where there is none — and 0 beyond 65.535 m too, which 16 bits
cannot hold (a clamped 65535 would be a valid 65.5 m). Relative depth has no unit: its Image
``encoding`` names its kind, ``relative_disparity_32FC1`` (larger is nearer) or
``relative_depth_32FC1`` (larger is farther), float32 pixels like ``32FC1``. The encoding is the
one field every ROS consumer of an Image reads, so whatever the topic is called, no node takes
relative depth for metres: depth_image_proc, cv_bridge and RViz refuse the encoding instead of
making points a random scale away. ``relative_encoding: 32FC1`` trades that for viewing it
in RViz or Foxglove (it is then relative only by its topic's name and an MCAP channel's
``depth_kind`` metadata).

Point clouds (``points``): ``sensor_msgs/msg/PointCloud2`` as ``depth_image_proc`` makes it from
the depth image and its CameraInfo (:mod:`edgedepth.media.pointcloud`): organized, the depth
image's header and size, ``x y z`` float32 (+ ``rgb``), NaN for invalid pixels, ``is_dense``
false.

Stamps: the wall-clock time of capture by default (``epoch``), as a ROS driver stamps what it
acquires; ``media`` stamps the media time (seconds from the start of the stream).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np

from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import DepthKind, Frame, Intrinsics
from edgedepth.media.pointcloud import (
    PointCloud2Packer,
    colours_at,
    depth_intrinsics,
    frame_intrinsics,
    frame_points_check,
)

DepthEncoding = Literal["32FC1", "16UC1"]
#: How header stamps are made: ``epoch`` = wall-clock time of capture (what ROS drivers stamp
#: with, the default), ``media`` = the frame's media time (seconds from the start of the stream).
StampClock = Literal["epoch", "media"]
#: Relative depth's Image encoding: ``named`` (its kind, see the module docstring) or ``32FC1``.
RelativeEncoding = Literal["named", "32FC1"]

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"

#: Field lines of each definition (comments left out); nested types by their short names.
DEFINITIONS = {
    "builtin_interfaces/msg/Time": "int32 sec\nuint32 nanosec\n",
    "std_msgs/msg/Header": "builtin_interfaces/Time stamp\nstring frame_id\n",
    "sensor_msgs/msg/RegionOfInterest": (
        "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify\n"
    ),
    IMAGE: (
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
        "uint8 is_bigendian\nuint32 step\nuint8[] data\n"
    ),
    COMPRESSED_IMAGE: "std_msgs/Header header\nstring format\nuint8[] data\n",
    CAMERA_INFO: (
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\n"
        "float64[] d\nfloat64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\n"
        "uint32 binning_y\nRegionOfInterest roi\n"
    ),
    "sensor_msgs/msg/PointField": (
        "uint8 INT8=1\nuint8 UINT8=2\nuint8 INT16=3\nuint8 UINT16=4\nuint8 INT32=5\n"
        "uint8 UINT32=6\nuint8 FLOAT32=7\nuint8 FLOAT64=8\n"
        "string name\nuint32 offset\nuint8 datatype\nuint32 count\n"
    ),
    POINT_CLOUD2: (
        "std_msgs/Header header\nuint32 height\nuint32 width\nPointField[] fields\n"
        "bool is_bigendian\nuint32 point_step\nuint32 row_step\nuint8[] data\nbool is_dense\n"
    ),
}
#: The types each message type uses, in the order its schema text lists them.
DEPENDENCIES = {
    IMAGE: ("std_msgs/msg/Header", "builtin_interfaces/msg/Time"),
    COMPRESSED_IMAGE: ("std_msgs/msg/Header", "builtin_interfaces/msg/Time"),
    CAMERA_INFO: (
        "std_msgs/msg/Header",
        "builtin_interfaces/msg/Time",
        "sensor_msgs/msg/RegionOfInterest",
    ),
    POINT_CLOUD2: (
        "std_msgs/msg/Header",
        "builtin_interfaces/msg/Time",
        "sensor_msgs/msg/PointField",
    ),
}
#: RIHS01 type hashes (REP-2011) of the definitions above.
TYPE_HASHES = {
    IMAGE: "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
    COMPRESSED_IMAGE: "RIHS01_15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a",
    CAMERA_INFO: "RIHS01_b3dfd68ff46c9d56c80fd3bd4ed22c7a4ddce8c8348f2f59c299e73118e7e275",
    POINT_CLOUD2: "RIHS01_9198cabf7da3796ae6fe19c4cb3bdd3525492988c70522628af5daa124bae2b5",
}
#: Last topic-name token for each relative depth kind (ROS names allow no '-').
RELATIVE_TOPIC_NAMES = {
    DepthKind.RELATIVE_DISPARITY: "relative_disparity",
    DepthKind.RELATIVE_DEPTH: "relative_depth",
}
#: The Image encoding of each relative depth kind (float32 pixels).
RELATIVE_ENCODINGS = {kind: f"{name}_32FC1" for kind, name in RELATIVE_TOPIC_NAMES.items()}
#: Millimetres a 16UC1 pixel can hold.
MAX_MILLIMETRES = 65535
_SEPARATOR = "=" * 80


_NAME_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_topic_name(name: str) -> str:
    """A ROS 2 topic name (``depth/image``, ``/robot1/depth/image``), or ValueError saying why
    not: tokens of letters, digits and ``_``, not starting with a digit."""
    tokens = name.strip("/").split("/")
    if not all(_NAME_TOKEN.fullmatch(token) for token in tokens) or name.endswith("/"):
        raise ValueError(
            f"{name!r} is not a ROS 2 topic name (tokens of letters, digits and _, "
            "not starting with a digit, separated by single /)"
        )
    return name


def schema_text(type_name: str) -> str:
    """The ``ros2msg`` schema of a type as rosbag2 records it: its definition, then each type
    it uses after a ``MSG: pkg/Name`` line."""
    parts = [DEFINITIONS[type_name]]
    for dependency in DEPENDENCIES[type_name]:
        package, _, name = dependency.split("/")
        parts.append(f"{_SEPARATOR}\nMSG: {package}/{name}\n{DEFINITIONS[dependency]}")
    return "\n".join(parts)


def dds_type_name(type_name: str) -> str:
    """``sensor_msgs/msg/Image`` → ``sensor_msgs::msg::dds_::Image_`` (the name on the wire)."""
    package, kind, name = type_name.split("/")
    return f"{package}::{kind}::dds_::{name}_"


def ros_type_name(dds_name: str) -> str:
    """``sensor_msgs::msg::dds_::Image_`` → ``sensor_msgs/msg/Image``."""
    package, kind, _, name = dds_name.split("::")
    return f"{package}/{kind}/{name.removesuffix('_')}"


def depth_topic_name(base: str, kind: DepthKind) -> str:
    """Where depth of ``kind`` is published: metric on ``base``; relative depth on a sibling
    named for its kind (``depth/image`` → ``depth/relative_disparity``)."""
    if kind is DepthKind.METRIC_METERS:
        return base
    parent = base.strip("/").rpartition("/")[0]
    return f"{parent}/{RELATIVE_TOPIC_NAMES[kind]}".strip("/")


def to_millimetres(depth: np.ndarray) -> np.ndarray:
    """Metres → REP-118 ``16UC1``: millimetres rounded; 0 (no measurement) for NaN, ±inf,
    non-positive depth and depth beyond 65.535 m (16 bits cannot hold it: never clamped to a
    valid 65535)."""
    with np.errstate(invalid="ignore", over="ignore"):
        millimetres = np.rint(np.asarray(depth, dtype=np.float64) * 1000.0)
        held = np.isfinite(millimetres) & (millimetres > 0) & (millimetres <= MAX_MILLIMETRES)
    return np.where(held, millimetres, 0.0).astype("<u2")


def to_rep117_metres(depth: np.ndarray) -> np.ndarray:
    """Metres → REP-117 ``32FC1``: NaN where there is no measurement (NaN, ±inf, ≤ 0: a 0.0
    would be a point at the camera)."""
    depth = np.asarray(depth, dtype="<f4")
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth > 0)
    return depth if valid.all() else np.where(valid, depth, np.float32(np.nan)).astype("<f4")


def depth_pixels(
    depth: np.ndarray,
    kind: DepthKind,
    encoding: DepthEncoding = "32FC1",
    relative_encoding: RelativeEncoding = "named",
) -> tuple[np.ndarray, str]:
    """(pixels, Image encoding) of a depth map: metric as ``32FC1`` metres or ``16UC1``
    millimetres (REP-117/118 invalid values); relative as float32 under its kind's encoding
    (or ``32FC1``), whatever ``encoding`` says (it has no unit to round to)."""
    if kind is DepthKind.METRIC_METERS:
        if encoding == "16UC1":
            return to_millimetres(depth), "16UC1"
        return to_rep117_metres(depth), "32FC1"
    pixels = np.asarray(depth, dtype="<f4")
    return pixels, RELATIVE_ENCODINGS[kind] if relative_encoding == "named" else "32FC1"


def depth_kind_of_encoding(encoding: str) -> DepthKind | None:
    """The relative depth kind an Image encoding names; None for any other encoding."""
    for kind, name in RELATIVE_ENCODINGS.items():
        if encoding == name:
            return kind
    return None


def depth_kind_of_topic(topic: str) -> DepthKind:
    """The depth kind a depth image topic carries, from its name (see :func:`depth_topic_name`)."""
    last = topic.rstrip("/").rpartition("/")[2]
    for kind, name in RELATIVE_TOPIC_NAMES.items():
        if last == name:
            return kind
    return DepthKind.METRIC_METERS


def camera_info_topic(image_topic: str) -> str:
    """The ``camera_info`` topic beside an image topic, as image_transport and RViz expect it
    (``depth/image`` → ``depth/camera_info``)."""
    parent = image_topic.strip("/").rpartition("/")[0]
    return f"{parent}/camera_info".strip("/")


# --- messages -----------------------------------------------------------------------------------


def header(stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """A ``std_msgs/msg/Header``."""
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame_id}


def image_message(pixels: np.ndarray, encoding: str, head: dict[str, Any]) -> dict[str, Any]:
    """A ``sensor_msgs/msg/Image`` of H×W or H×W×C little-endian pixels."""
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype.byteorder == ">":
        pixels = pixels.astype(pixels.dtype.newbyteorder("<"))
    height, width = pixels.shape[:2]
    return {
        "header": head,
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": pixels.strides[0],
        "data": pixels.tobytes(),
    }


def depth_message(
    depth: np.ndarray,
    kind: DepthKind,
    encoding: DepthEncoding,
    head: dict[str, Any],
    relative_encoding: RelativeEncoding = "named",
) -> dict[str, Any]:
    """A depth Image (:func:`depth_pixels`)."""
    pixels, name = depth_pixels(depth, kind, encoding, relative_encoding)
    return image_message(pixels, name, head)


def compressed_image_message(rgb: np.ndarray, quality: int, head: dict[str, Any]) -> dict[str, Any]:
    """A ``sensor_msgs/msg/CompressedImage`` holding the RGB image as JPEG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="JPEG", quality=quality)
    return {"header": head, "format": "jpeg", "data": buffer.getvalue()}


def camera_info_message(
    camera: Intrinsics, height: int, width: int, head: dict[str, Any]
) -> dict[str, Any]:
    """A ``sensor_msgs/msg/CameraInfo`` of a pinhole camera, no distortion."""
    k = np.asarray(camera.matrix, dtype=np.float64)
    projection = np.hstack([k, np.zeros((3, 1))])
    return {
        "header": head,
        "height": height,
        "width": width,
        "distortion_model": "plumb_bob",
        "d": [0.0] * 5,
        "k": k.ravel().tolist(),
        "r": np.eye(3).ravel().tolist(),
        "p": projection.ravel().tolist(),
        "binning_x": 0,
        "binning_y": 0,
        "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
    }


def point_cloud_message(
    depth: np.ndarray,
    camera: Intrinsics,
    rgb: np.ndarray | None,
    head: dict[str, Any],
    pack: PointCloud2Packer,
) -> dict[str, Any]:
    """A ``sensor_msgs/msg/PointCloud2`` of metric ``depth`` as depth_image_proc makes it
    (``camera``: the intrinsics at the depth's size; ``rgb``: colours at that size, or None;
    ``pack``: the stream's packer, whose buffer is reused)."""
    fields, point_step, data = pack(depth, camera, rgb)
    height, width = depth.shape
    return {
        "header": head,
        "height": height,
        "width": width,
        "fields": [
            {"name": f.name, "offset": f.offset, "datatype": f.datatype, "count": f.count}
            for f in fields
        ],
        "is_bigendian": False,
        "point_step": point_step,
        "row_step": width * point_step,
        "data": data,
        "is_dense": False,
    }


class FrameStamps:
    """Header stamps (integer nanoseconds) of the frames of one run, on one clock."""

    def __init__(self, clock: StampClock = "epoch") -> None:
        self.clock = clock
        self._epoch_offset: float | None = None

    def __call__(self, frame: Frame) -> int:
        if self.clock == "media":
            return round(frame.timestamp * 1e9)
        if self._epoch_offset is None:
            # Wall clock at the first frame's capture; later frames keep its media-time spacing.
            captured = time.time() - (time.perf_counter() - frame.captured_at)
            self._epoch_offset = captured - frame.timestamp
        return round((self._epoch_offset + frame.timestamp) * 1e9)


# --- CDR ----------------------------------------------------------------------------------------


def import_cdr_codec() -> Any:
    """mcap-ros2-support's CDR codec, or a one-line error saying how to install it."""
    try:
        # serialize_dynamic/generate_dynamic: the CDR codec behind mcap_ros2's Writer and
        # DecoderFactory, usable on single messages (rmw_zenoh payloads).
        from mcap_ros2 import _dynamic
    except ImportError:
        raise EdgedepthError(
            "ROS 2 messages need mcap and mcap-ros2-support: pip install 'edgedepth[ros2]'"
        ) from None
    return _dynamic


@cache
def _encoder(type_name: str) -> Callable[[Any], bytes]:
    return import_cdr_codec().serialize_dynamic(type_name, schema_text(type_name))[type_name]


@cache
def _decoder(type_name: str) -> Callable[[bytes], Any]:
    return import_cdr_codec().generate_dynamic(type_name, schema_text(type_name))[type_name]


def encode_cdr(type_name: str, message: dict[str, Any]) -> bytes:
    """A message (dict of fields) as ROS 2 CDR bytes, encapsulation header included."""
    return _encoder(type_name)(message)


def decode_cdr(type_name: str, data: bytes) -> Any:
    """ROS 2 CDR bytes of one of this module's types → an object with the message's fields."""
    return _decoder(type_name)(bytes(data))


def fully_qualified(topic: str) -> str:
    """``depth/image`` → ``/depth/image`` (topics are resolved in the root namespace)."""
    return "/" + topic.strip("/")


def stamp_seconds(message: Any) -> float:
    """The header stamp of a decoded message, in seconds."""
    return message.header.stamp.sec + message.header.stamp.nanosec / 1e9


# --- a frame as messages -------------------------------------------------------------------------

RgbFormat = Literal["none", "raw", "jpeg"]


@dataclass(frozen=True)
class FrameMessage:
    """One message made from a frame: where it goes, its type and its fields."""

    topic: str
    type_name: str
    fields: dict[str, Any]


@dataclass
class FrameToMessages:
    """Turns each frame into the messages of one ROS 2 camera: RGB on ``rgb_topic`` (``raw``:
    Image ``rgb8``; ``jpeg``: CompressedImage on ``<rgb_topic>/compressed``), depth on
    ``depth_topic`` (relative depth: see :func:`depth_topic_name`), a CameraInfo beside each
    image topic, and with ``points`` the PointCloud2 of metric depth on ``points_topic``. The
    camera is ``intrinsics``, else the frame's own, else one of ``horizontal_fov`` degrees; with
    none, no CameraInfo (and no points) is made. Every message carries its own size, so frames
    may change size; the depth's CameraInfo is of the depth's size."""

    frame_id: str = "camera"
    depth_topic: str = "depth/image"
    #: Topic of relative depth; None: named for its kind beside ``depth_topic``.
    relative_topic: str | None = None
    depth_encoding: DepthEncoding = "32FC1"
    relative_encoding: RelativeEncoding = "named"
    depth: bool = True
    rgb: RgbFormat = "none"
    rgb_topic: str = "camera/image_raw"
    jpeg_quality: int = 90
    camera_info: bool = True
    intrinsics: Intrinsics | None = None
    horizontal_fov: float | None = None
    clock: StampClock = "epoch"
    #: The PointCloud2 of metric depth (relative depth is refused, see ``points_key``).
    points: bool = False
    points_topic: str = "depth/points"
    #: Colour the points (depth_image_proc's xyzrgb layout).
    points_rgb: bool = False
    #: The option that asked for points, named in errors.
    points_key: str = "points"

    def __post_init__(self) -> None:
        self.stamps = FrameStamps(self.clock)
        self.pack_points = PointCloud2Packer()

    def depth_topic_for(self, kind: DepthKind) -> str:
        """The topic depth of this kind goes to."""
        if kind is not DepthKind.METRIC_METERS and self.relative_topic:
            return self.relative_topic
        return depth_topic_name(self.depth_topic, kind)

    def __call__(self, frame: Frame, stamp_ns: int | None = None) -> list[FrameMessage]:
        """The frame's messages, stamped ``stamp_ns`` (None: by this object's clock)."""
        head = header(self.stamps(frame) if stamp_ns is None else stamp_ns, self.frame_id)
        camera = frame_intrinsics(frame, self.intrinsics, self.horizontal_fov)
        messages: list[FrameMessage] = []

        def add(topic: str, type_name: str, fields: dict[str, Any], info_of: str | None) -> None:
            if info_of is not None and self.camera_info and camera is not None:
                size = (fields["height"], fields["width"]) if "height" in fields else None
                height, width = size or (frame.height, frame.width)
                resized = camera.resized((frame.height, frame.width), (height, width))
                info = camera_info_message(resized, height, width, head)
                messages.append(FrameMessage(camera_info_topic(info_of), CAMERA_INFO, info))
            messages.append(FrameMessage(topic, type_name, fields))

        if self.rgb == "raw":
            add(self.rgb_topic, IMAGE, image_message(frame.image, "rgb8", head), self.rgb_topic)
        elif self.rgb == "jpeg":
            jpeg = compressed_image_message(frame.image, self.jpeg_quality, head)
            add(f"{self.rgb_topic}/compressed", COMPRESSED_IMAGE, jpeg, self.rgb_topic)
        if self.depth and frame.depth is not None and frame.depth_kind is not None:
            topic = self.depth_topic_for(frame.depth_kind)
            fields = depth_message(
                frame.depth, frame.depth_kind, self.depth_encoding, head, self.relative_encoding
            )
            add(topic, IMAGE, fields, topic)
        if self.points:
            depth = frame_points_check(frame, self.points_key)
            if self.depth_encoding == "16UC1":
                # The points of the depth image as published (millimetres, 0 beyond 65.535 m),
                # as depth_image_proc would make them from it.
                millimetres = to_millimetres(depth)
                depth = np.where(millimetres > 0, millimetres * np.float32(0.001), np.nan)
            if camera is None:
                raise EdgedepthError(
                    f"{self.points_key}: frame {frame.index} has no camera intrinsics: set "
                    "intrinsics or horizontal_fov"
                )
            depth_camera = depth_intrinsics(camera, (frame.height, frame.width), depth)
            rgb = colours_at(frame.image, depth.shape) if self.points_rgb else None
            cloud = point_cloud_message(depth, depth_camera, rgb, head, self.pack_points)
            add(self.points_topic, POINT_CLOUD2, cloud, None)
        return messages
