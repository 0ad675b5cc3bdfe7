"""ROS 2 messages without a ROS install: the ``sensor_msgs`` types edgedepth writes, their
definitions and type hashes, a frame turned into them, and their CDR encoding.

Types (definitions as in ``common_interfaces``, identical on Jazzy, Kilted and Rolling):
``sensor_msgs/msg/Image``, ``sensor_msgs/msg/CompressedImage``, ``sensor_msgs/msg/CameraInfo``
and what they use (``std_msgs/msg/Header``, ``builtin_interfaces/msg/Time``,
``sensor_msgs/msg/RegionOfInterest``). Their RIHS01 type hashes (REP-2011, the hash that
``ros2 topic info -v`` prints and rmw_zenoh puts in its key expressions) are constants here; the
tests recompute them from these definitions with ``rosbags``.

Payloads are CDR as ROS 2 sends and records them: XCDR1 little endian, starting with the
4-byte encapsulation header ``00 01 00 00``, encoded by ``mcap-ros2-support`` (the extra
``edgedepth[ros2]``).

Depth (REP-118): metric depth is ``32FC1`` metres (NaN/0: no measurement) or ``16UC1``
millimetres (0: no measurement). Relative depth has no unit; it is ``32FC1`` on a topic of its
own whose last name says what the numbers are — ``relative_disparity`` (larger is nearer) or
``relative_depth`` (larger is farther) — so no node takes it for metres.
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
from pydantic import Field

from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import DepthKind, Frame
from edgedepth.api.options import StrictModel

DepthEncoding = Literal["32FC1", "16UC1"]
#: How header stamps are made: ``media`` = the frame's media time (seconds from the start of the
#: stream), ``epoch`` = wall-clock time of capture (what other ROS nodes stamp with).
StampClock = Literal["media", "epoch"]

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"

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
}
#: RIHS01 type hashes (REP-2011) of the definitions above.
TYPE_HASHES = {
    IMAGE: "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
    COMPRESSED_IMAGE: "RIHS01_15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a",
    CAMERA_INFO: "RIHS01_b3dfd68ff46c9d56c80fd3bd4ed22c7a4ddce8c8348f2f59c299e73118e7e275",
}
#: Last topic-name token for each relative depth kind (ROS names allow no '-').
RELATIVE_TOPIC_NAMES = {
    DepthKind.RELATIVE_DISPARITY: "relative_disparity",
    DepthKind.RELATIVE_DEPTH: "relative_depth",
}
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


class CameraIntrinsics(StrictModel):
    """Pinhole intrinsics of the images, in pixels."""

    fx: float = Field(gt=0)
    """Focal length along x."""
    fy: float = Field(gt=0)
    """Focal length along y."""
    cx: float
    """Principal point, x."""
    cy: float
    """Principal point, y."""

    @property
    def matrix(self) -> np.ndarray:
        """K (3×3)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


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
    """Metres → REP-118 ``16UC1``: millimetres rounded, 0 for NaN/non-positive, clamped to 65535."""
    millimetres = np.rint(np.asarray(depth, dtype=np.float64) * 1000.0)
    millimetres = np.where(np.isnan(millimetres), 0.0, millimetres)
    return np.clip(millimetres, 0, 65535).astype("<u2")


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
    depth: np.ndarray, kind: DepthKind, encoding: DepthEncoding, head: dict[str, Any]
) -> dict[str, Any]:
    """REP-118 depth: metric as ``32FC1`` metres or ``16UC1`` millimetres; relative as
    ``32FC1`` whatever ``encoding`` says (it has no unit to round to)."""
    if encoding == "16UC1" and kind is DepthKind.METRIC_METERS:
        return image_message(to_millimetres(depth), "16UC1", head)
    return image_message(np.asarray(depth, dtype="<f4"), "32FC1", head)


def compressed_image_message(rgb: np.ndarray, quality: int, head: dict[str, Any]) -> dict[str, Any]:
    """A ``sensor_msgs/msg/CompressedImage`` holding the RGB image as JPEG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="JPEG", quality=quality)
    return {"header": head, "format": "jpeg", "data": buffer.getvalue()}


def camera_info_message(
    k: np.ndarray, height: int, width: int, head: dict[str, Any]
) -> dict[str, Any]:
    """A ``sensor_msgs/msg/CameraInfo`` for a pinhole camera matrix K (3×3), no distortion."""
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
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


class FrameStamps:
    """Header stamps (integer nanoseconds) of the frames of one run, on one clock."""

    def __init__(self, clock: StampClock = "media") -> None:
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
    ``depth_topic`` (relative depth: see :func:`depth_topic_name`), and a CameraInfo beside each
    image topic. K comes from ``intrinsics``, else from the frame (``extras["intrinsics"]``);
    without either, no CameraInfo is made. Every message carries its own size, so frames may
    change size."""

    frame_id: str = "camera"
    depth_topic: str = "depth/image"
    #: Topic of relative depth; None: named for its kind beside ``depth_topic``.
    relative_topic: str | None = None
    depth_encoding: DepthEncoding = "32FC1"
    depth: bool = True
    rgb: RgbFormat = "none"
    rgb_topic: str = "camera/image_raw"
    jpeg_quality: int = 90
    camera_info: bool = True
    intrinsics: np.ndarray | None = None
    clock: StampClock = "media"

    def __post_init__(self) -> None:
        self.stamps = FrameStamps(self.clock)

    def depth_topic_for(self, kind: DepthKind) -> str:
        """The topic depth of this kind goes to."""
        if kind is not DepthKind.METRIC_METERS and self.relative_topic:
            return self.relative_topic
        return depth_topic_name(self.depth_topic, kind)

    def __call__(self, frame: Frame) -> list[FrameMessage]:
        head = header(self.stamps(frame), self.frame_id)
        k = self.intrinsics if self.intrinsics is not None else frame.extras.get("intrinsics")
        info = None
        if self.camera_info and k is not None:
            info = camera_info_message(k, frame.height, frame.width, head)
        messages: list[FrameMessage] = []

        def add(topic: str, type_name: str, fields: dict[str, Any], base_topic: str) -> None:
            if info is not None:
                messages.append(FrameMessage(camera_info_topic(base_topic), CAMERA_INFO, info))
            messages.append(FrameMessage(topic, type_name, fields))

        if self.rgb == "raw":
            add(self.rgb_topic, IMAGE, image_message(frame.image, "rgb8", head), self.rgb_topic)
        elif self.rgb == "jpeg":
            jpeg = compressed_image_message(frame.image, self.jpeg_quality, head)
            add(f"{self.rgb_topic}/compressed", COMPRESSED_IMAGE, jpeg, self.rgb_topic)
        if self.depth and frame.depth is not None and frame.depth_kind is not None:
            topic = self.depth_topic_for(frame.depth_kind)
            fields = depth_message(frame.depth, frame.depth_kind, self.depth_encoding, head)
            add(topic, IMAGE, fields, topic)
        return messages
