"""The messages of a depth topic (shaped like ROS ``sensor_msgs/Image``, ``CameraInfo`` and
``PointCloud2``, REP-117/118 units) and their ZeroMQ wire format: encoding, decoding, and the
errors of a message that is not in it. The format is described in :mod:`edgedepth.topic`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import DepthKind
from edgedepth.media.pointcloud import CloudSummary, unpack_pointcloud2
from edgedepth.topic.ros2 import (
    CAMERA_INFO,
    IMAGE,
    POINT_CLOUD2,
    RELATIVE_ENCODINGS,
    depth_kind_of_encoding,
    depth_kind_of_topic,
    depth_pixels,
    header,
    stamp_seconds,
)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
DEFAULT_TOPIC = "depth/image"
DEFAULT_RELATIVE_TOPIC = "depth/relative"
CAMERA_INFO_SUFFIX = "/camera_info"
Encoding = Literal["32FC1", "16UC1"]
Transport = Literal["zmq", "zenoh"]

#: Bytes per pixel of each encoding this module writes and reads.
_PIXEL_TYPES = {"32FC1": "f4", "16UC1": "u2", **dict.fromkeys(RELATIVE_ENCODINGS.values(), "f4")}
#: Fields of a point (name → byte offset) received at most.
MAX_POINT_FIELDS = 64
#: A received header larger than this is refused before it is parsed.
MAX_HEADER_BYTES = 64 * 1024
#: Longest text of a :class:`MessageError` (a message is untrusted: what it says is cut).
MAX_ERROR_CHARS = 240
#: Largest width or height taken from a message.
MAX_SIDE = 1 << 20


def bounded(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` safe to print whatever a sender put in it: control characters escaped, cut to
    ``limit`` characters."""
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit * 2])
    if len(safe) > limit or len(text) > limit * 2:
        safe = safe[: limit - 1] + "…"
    return safe


class MessageError(ValueError):
    """A received message is not in the format described in this module (its text is bounded
    and printable: it may quote what an untrusted sender sent)."""

    def __init__(self, text: str) -> None:
        super().__init__(bounded(text))


@dataclass(frozen=True)
class Stamped:
    """What every message carries: where it came from, its place in the stream and its time
    (the ``header`` of a ROS message, plus the topic)."""

    topic: str
    #: The frame index (ZeroMQ) or the publisher's sequence number from 1 (rmw_zenoh): a gap is
    #: a message this subscriber did not get.
    seq: int
    #: Seconds (``sec + nanosec / 1e9`` of the header's stamp).
    stamp: float
    frame_id: str


@dataclass(frozen=True)
class DepthImage(Stamped):
    """A received depth image (``sensor_msgs/Image``-shaped)."""

    height: int
    width: int
    encoding: str
    step: int
    depth_kind: DepthKind
    data: bytes
    is_bigendian: int = 0

    @property
    def depth(self) -> np.ndarray:
        """The pixels as sent, H×W: float32 for 32FC1, uint16 millimetres for 16UC1."""
        byte_order = ">" if self.is_bigendian else "<"
        dtype = np.dtype(byte_order + _PIXEL_TYPES[self.encoding])
        rows = np.frombuffer(self.data, dtype=np.uint8).reshape(self.height, self.step)
        pixels = rows[:, : self.width * dtype.itemsize].copy().view(dtype)
        return pixels.reshape(self.height, self.width).astype(dtype.newbyteorder("="))

    @property
    def meters(self) -> np.ndarray:
        """Metric depth in metres, float32 (NaN where 32FC1 had no measurement, 0 where 16UC1
        had none). Raises ``ValueError`` for relative depth, which has no unit."""
        if self.depth_kind is not DepthKind.METRIC_METERS:
            raise ValueError(f"{self.topic} carries {self.depth_kind.value}, not metres")
        if self.encoding == "16UC1":
            return self.depth.astype(np.float32) / np.float32(1000.0)
        return self.depth.astype(np.float32)


@dataclass(frozen=True)
class CameraInfo(Stamped):
    """Received intrinsics (``sensor_msgs/CameraInfo``-shaped) of the images of the same seq."""

    height: int
    width: int
    #: The 3×3 camera matrix, row-major.
    k: tuple[float, ...]

    @property
    def matrix(self) -> np.ndarray:
        """K as a 3×3 array."""
        return np.asarray(self.k, dtype=np.float64).reshape(3, 3)


@dataclass(frozen=True)
class PointCloud(Stamped):
    """A received organized point cloud (``sensor_msgs/PointCloud2``-shaped, little endian,
    float32 x y z, optional rgb)."""

    height: int
    width: int
    #: Field name → byte offset in a point.
    fields: dict[str, int]
    point_step: int
    data: bytes
    is_dense: bool = False

    @property
    def xyz(self) -> np.ndarray:
        """H×W×3 float32 points in metres (NaN: no point)."""
        return unpack_pointcloud2(self.data, self.height, self.width, self.fields, self.point_step)[
            0
        ]

    @property
    def rgb(self) -> np.ndarray | None:
        """H×W×3 uint8 colours, or None."""
        return unpack_pointcloud2(self.data, self.height, self.width, self.fields, self.point_step)[
            1
        ]

    def summary(self) -> CloudSummary:
        """Valid points and their bounds."""
        return CloudSummary.of(self.xyz)


Message = DepthImage | CameraInfo | PointCloud


# --- encoding -----------------------------------------------------------------------------------


def _header(stamp: float, frame_id: str, seq: int) -> dict[str, Any]:
    """A ROS header (:func:`edgedepth.topic.ros2.header`) with the frame's sequence number."""
    return {**header(round(stamp * 1e9), frame_id), "seq": seq}


def encode_image(
    depth: np.ndarray,
    kind: DepthKind,
    stamp: float,
    seq: int,
    frame_id: str = "camera",
    encoding: Encoding = "32FC1",
) -> tuple[dict[str, Any], bytes]:
    """The (header, pixel bytes) of one depth map (REP-117/118 invalid values; relative depth
    under its kind's encoding, :func:`edgedepth.topic.ros2.depth_pixels`). ``16UC1``
    (millimetres) is for metric depth only."""
    if encoding == "16UC1" and kind is not DepthKind.METRIC_METERS:
        raise EdgedepthError(
            f"encoding 16UC1 (millimetres) is for metric depth only, not {kind.value}"
        )
    pixels, encoding = depth_pixels(depth, kind, encoding)
    if pixels.ndim != 2:
        raise EdgedepthError(f"a depth image must be H×W, got shape {pixels.shape}")
    height, width = pixels.shape
    header = {
        "type": "Image",
        "header": _header(stamp, frame_id, seq),
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": width * pixels.itemsize,
        "depth_kind": kind.value,
    }
    return header, pixels.tobytes()


def encode_camera_info(
    intrinsics: tuple[float, float, float, float],
    height: int,
    width: int,
    stamp: float,
    seq: int,
    frame_id: str = "camera",
) -> dict[str, Any]:
    """The header of a CameraInfo message for pinhole intrinsics ``(fx, fy, cx, cy)`` (it has no
    pixel data)."""
    fx, fy, cx, cy = intrinsics
    return {
        "type": "CameraInfo",
        "header": _header(stamp, frame_id, seq),
        "height": height,
        "width": width,
        "distortion_model": "plumb_bob",
        "d": [0.0] * 5,
        "k": [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
        "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        "p": [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
    }


def encode_points(cloud: dict[str, Any], seq: int) -> tuple[dict[str, Any], bytes]:
    """The (header, point bytes) of a PointCloud2 (the fields of
    :func:`edgedepth.topic.ros2.point_cloud_message`) in the ZeroMQ format."""
    fields = {key: value for key, value in cloud.items() if key != "data"}
    fields["header"] = {**cloud["header"], "seq": seq}
    return {"type": "PointCloud2", **fields}, cloud["data"]


def encode_header(header: dict[str, Any]) -> bytes:
    """The header as sent: compact UTF-8 JSON."""
    return json.dumps(header, separators=(",", ":")).encode()


# --- decoding -----------------------------------------------------------------------------------


def _integer(value: Any, name: str, low: int = 0, high: int = (1 << 63) - 1) -> int:
    """An integer field of a received header (not a float, a bool or a string), in range."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, not {value!r:.40}")
    return value


def _flag(value: Any, name: str) -> bool:
    """A boolean field of a received header (true or false, nothing else)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r:.40}")
    return value


def decode(topic: str, header_json: bytes, data: bytes) -> Message:
    """A message from its parts (topic, header JSON, pixel bytes); :class:`MessageError` if they
    are not in this module's format, whatever they hold (a received message is untrusted)."""
    if len(header_json) > MAX_HEADER_BYTES:
        raise MessageError(f"{topic}: a header of {len(header_json)} bytes is not one of ours")
    try:
        fields = json.loads(header_json)
        head = fields["header"]
        stamp = head["stamp"]
        common = {
            "topic": topic,
            "seq": _integer(head["seq"], "header.seq"),
            "stamp": _integer(stamp["sec"], "stamp.sec", -(1 << 31), (1 << 31) - 1)
            + _integer(stamp["nanosec"], "stamp.nanosec", 0, 999_999_999) / 1e9,
            "frame_id": str(head["frame_id"]),
            "height": _integer(fields["height"], "height", 0, MAX_SIDE),
            "width": _integer(fields["width"], "width", 0, MAX_SIDE),
        }
        if fields["type"] == "CameraInfo":
            k = tuple(float(v) for v in fields["k"])
            if len(k) != 9:
                raise ValueError(f"k must hold 9 numbers, not {len(k)}")
            return CameraInfo(**common, k=k)
        if fields["type"] == "PointCloud2":
            return checked_points(
                PointCloud(
                    **common,
                    fields=point_fields(fields["fields"]),
                    point_step=_integer(fields["point_step"], "point_step", 1, 1 << 16),
                    data=bytes(data),
                    is_dense=_flag(fields["is_dense"], "is_dense"),
                ),
                _flag(fields["is_bigendian"], "is_bigendian"),
                _integer(fields["row_step"], "row_step", 0, MAX_SIDE << 16),
            )
        message = DepthImage(
            **common,
            encoding=str(fields["encoding"]),
            step=_integer(fields["step"], "step", 0, MAX_SIDE * 8),
            depth_kind=DepthKind(fields["depth_kind"]),
            data=bytes(data),
            is_bigendian=_integer(fields.get("is_bigendian", 0), "is_bigendian", 0, 1),
        )
    except (ValueError, KeyError, TypeError, IndexError, ArithmeticError, RecursionError) as exc:
        raise MessageError(
            f"{topic}: not a depth topic message ({type(exc).__name__}: {exc})"
        ) from None
    named = depth_kind_of_encoding(message.encoding)
    if named is not None and named is not message.depth_kind:
        raise MessageError(
            f"{topic}: encoding {message.encoding} with depth_kind {message.depth_kind.value}"
        )
    return checked_image(message)


def point_fields(fields: Any) -> dict[str, int]:
    """Name → offset of PointField-shaped entries (dicts or decoded messages); ValueError for
    what a float32 x y z cloud cannot be."""
    if len(fields) > MAX_POINT_FIELDS:
        raise ValueError(f"{len(fields)} point fields")
    offsets: dict[str, int] = {}
    for field in fields:
        get = field.get if isinstance(field, dict) else lambda key, f=field: getattr(f, key)
        name, datatype = str(get("name")), get("datatype")
        if name in ("x", "y", "z", "rgb") and (datatype != 7 or get("count") != 1):
            raise ValueError(f"field {name} is not one float32 (datatype {datatype})")
        offsets[name] = _integer(get("offset"), f"offset of {name}", 0, 1 << 16)
    if not {"x", "y", "z"} <= offsets.keys():
        raise ValueError("a point cloud without x, y and z fields")
    return offsets


def checked_points(cloud: PointCloud, is_bigendian: bool, row_step: int) -> PointCloud:
    """``cloud`` if its bytes hold what its fields say (little endian, rows of ``row_step`` =
    width × point_step bytes, fields inside a point), else :class:`MessageError`."""
    topic = cloud.topic
    if is_bigendian:
        raise MessageError(f"{topic}: a big-endian point cloud")
    if row_step != cloud.width * cloud.point_step:
        raise MessageError(
            f"{topic}: row_step {row_step} for {cloud.width} points of {cloud.point_step} bytes"
        )
    if len(cloud.data) != cloud.height * row_step:
        raise MessageError(
            f"{topic}: {len(cloud.data)} data bytes for {cloud.height} rows of {row_step} bytes"
        )
    if max(cloud.fields.values()) + 4 > cloud.point_step:
        raise MessageError(f"{topic}: a field beyond the {cloud.point_step}-byte point")
    return cloud


def checked_image(message: DepthImage) -> DepthImage:
    """``message`` if its pixels are what its fields say (encoding, rows of ``step`` bytes,
    ``height`` of them), else :class:`MessageError`: nothing downstream reads beyond them."""
    topic = message.topic
    if message.encoding not in _PIXEL_TYPES:
        raise MessageError(f"{topic}: unsupported encoding {message.encoding!r}")
    row_bytes = message.width * np.dtype(_PIXEL_TYPES[message.encoding]).itemsize
    if message.height <= 0 or message.width <= 0 or message.step < row_bytes:
        raise MessageError(
            f"{topic}: {message.width}x{message.height} {message.encoding} with rows of "
            f"{message.step} bytes is not an image"
        )
    if message.is_bigendian not in (0, 1):
        raise MessageError(f"{topic}: is_bigendian must be 0 or 1, not {message.is_bigendian}")
    if len(message.data) != message.height * message.step:
        raise MessageError(
            f"{topic}: {len(message.data)} data bytes for {message.height} rows of "
            f"{message.step} bytes"
        )
    return message


def as_topic_message(
    topic: str, type_name: str, seq: int, message: Any, kind: DepthKind | None = None
) -> Any:
    """A decoded ROS 2 depth Image (``32FC1``/``16UC1`` or a relative encoding), CameraInfo or
    PointCloud2 (from CDR, an MCAP file or rmw_zenoh) as a :class:`DepthImage` /
    :class:`CameraInfo` / :class:`PointCloud`. The depth's kind: what its encoding names, else
    ``kind`` when the source says it (an MCAP channel's metadata), else from the topic name.
    None for any other message; :class:`MessageError` for one whose data is not what its
    fields say."""
    depth = type_name == IMAGE and message.encoding in _PIXEL_TYPES
    if type_name not in (CAMERA_INFO, POINT_CLOUD2) and not depth:
        return None
    common = {
        "topic": topic,
        "seq": seq,
        "stamp": stamp_seconds(message),
        "frame_id": message.header.frame_id,
        "height": message.height,
        "width": message.width,
    }
    if type_name == CAMERA_INFO:
        k = tuple(float(v) for v in message.k)
        if len(k) != 9:
            raise MessageError(f"{topic}: CameraInfo k must hold 9 numbers, not {len(k)}")
        return CameraInfo(**common, k=k)
    if type_name == POINT_CLOUD2:
        try:
            fields = point_fields(message.fields)
        except ValueError as exc:
            raise MessageError(f"{topic}: {exc}") from None
        cloud = PointCloud(
            **common,
            fields=fields,
            point_step=message.point_step,
            data=bytes(message.data),
            is_dense=bool(message.is_dense),
        )
        return checked_points(cloud, bool(message.is_bigendian), message.row_step)
    named = depth_kind_of_encoding(message.encoding)
    return checked_image(
        DepthImage(
            **common,
            encoding=message.encoding,
            step=message.step,
            depth_kind=named or kind or depth_kind_of_topic(topic),
            data=bytes(message.data),
            is_bigendian=message.is_bigendian,
        )
    )
