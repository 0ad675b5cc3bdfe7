"""ROS-like depth messages on a topic: the message format, and a subscriber that decodes them.

Messages are shaped like ``sensor_msgs/Image`` and ``sensor_msgs/CameraInfo``. Depth follows
REP-118: metric depth as ``32FC1`` metres (NaN/0 = no measurement) or ``16UC1`` millimetres
(rounded, 0 = no measurement, clamped to 65535). Relative depth is published on a topic of its
own, always ``32FC1``, and its ``depth_kind`` field says what the numbers are
(``relative-disparity``: larger is nearer; ``relative-depth``: larger is farther), so a
subscriber cannot take it for metres.

Wire format (language-neutral)
------------------------------

ZeroMQ (the default): the publisher binds a PUB-compatible socket (XPUB); subscribers connect a
SUB socket and subscribe to a topic *prefix* (ZeroMQ filters on the first frame's bytes, so
``depth/image`` also receives ``depth/image/camera_info``). Each message has three frames:

1. the topic, UTF-8 (``depth/image``, ``depth/relative``, ``depth/image/camera_info``);
2. the header, UTF-8 JSON: every field of the message except the pixels;
3. the pixels: ``height`` rows of ``step`` bytes, row-major, little endian
   (``is_bigendian`` = 0), float32 for ``32FC1``, uint16 for ``16UC1``; empty for CameraInfo.

Zenoh (``transport: zenoh``): rmw_zenoh's wire format, so ROS 2 nodes receive the messages:
CDR ``sensor_msgs/msg/Image`` and ``CameraInfo`` on rmw_zenoh key expressions, with its
attachment and liveliness tokens (see :mod:`edgedepth.rmw_zenoh`; ``seq`` is then the
publisher's sequence number, from 1).

Header JSON of an image::

    {"type": "Image",
     "header": {"stamp": {"sec": 12, "nanosec": 500000000}, "frame_id": "camera", "seq": 375},
     "height": 480, "width": 640, "encoding": "32FC1", "is_bigendian": 0, "step": 2560,
     "depth_kind": "metric-meters"}

``stamp`` is the frame's media time (seconds from the start of a file, capture clock for a
camera); ``seq`` is the frame index, so a gap in ``seq`` is a frame this subscriber did not get.

Header JSON of camera info (the image's intrinsics, pinhole, no distortion)::

    {"type": "CameraInfo", "header": {...same...}, "height": 480, "width": 640,
     "distortion_model": "plumb_bob", "d": [0, 0, 0, 0, 0],
     "k": [fx, 0, cx, 0, fy, cy, 0, 0, 1], "r": [...3x3 identity...],
     "p": [fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0]}

A subscriber in C++ with cppzmq, for example: ``recv_multipart``, parse frame 2 with any JSON
library, then view frame 3 as ``float`` (or ``uint16_t``) rows of ``step`` bytes.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from edgedepth.errors import EdgedepthError
from edgedepth.frame import DepthKind

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
DEFAULT_TOPIC = "depth/image"
DEFAULT_RELATIVE_TOPIC = "depth/relative"
CAMERA_INFO_SUFFIX = "/camera_info"
Encoding = Literal["32FC1", "16UC1"]
Transport = Literal["zmq", "zenoh"]

#: Bytes per pixel of each encoding this module writes and reads.
_PIXEL_TYPES = {"32FC1": "f4", "16UC1": "u2"}


class MessageError(ValueError):
    """A received message is not in the format described in this module."""


@dataclass(frozen=True)
class DepthImage:
    """A received depth image (``sensor_msgs/Image``-shaped)."""

    topic: str
    seq: int
    #: Seconds (``sec + nanosec / 1e9`` of the header's stamp).
    stamp: float
    frame_id: str
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
        """Metric depth in metres, float32 (0 where 16UC1 had no measurement). Raises
        ``ValueError`` for relative depth, which has no unit."""
        if self.depth_kind is not DepthKind.METRIC_METERS:
            raise ValueError(f"{self.topic} carries {self.depth_kind.value}, not metres")
        if self.encoding == "16UC1":
            return self.depth.astype(np.float32) / np.float32(1000.0)
        return self.depth.astype(np.float32)


@dataclass(frozen=True)
class CameraInfo:
    """Received intrinsics (``sensor_msgs/CameraInfo``-shaped) of the images of the same seq."""

    topic: str
    seq: int
    stamp: float
    frame_id: str
    height: int
    width: int
    #: The 3×3 camera matrix, row-major.
    k: tuple[float, ...]

    @property
    def matrix(self) -> np.ndarray:
        """K as a 3×3 array."""
        return np.asarray(self.k, dtype=np.float64).reshape(3, 3)


Message = DepthImage | CameraInfo


# --- encoding -----------------------------------------------------------------------------------


def _header(stamp: float, frame_id: str, seq: int) -> dict[str, Any]:
    nanoseconds = round(stamp * 1e9)
    return {
        "stamp": {"sec": nanoseconds // 1_000_000_000, "nanosec": nanoseconds % 1_000_000_000},
        "frame_id": frame_id,
        "seq": seq,
    }


def to_millimetres(depth: np.ndarray) -> np.ndarray:
    """Metres → REP-118 ``16UC1``: millimetres rounded, 0 for NaN/non-positive, clamped to 65535."""
    millimetres = np.rint(np.asarray(depth, dtype=np.float64) * 1000.0)
    millimetres = np.where(np.isnan(millimetres), 0.0, millimetres)
    return np.clip(millimetres, 0, 65535).astype("<u2")


def encode_image(
    depth: np.ndarray,
    kind: DepthKind,
    stamp: float,
    seq: int,
    frame_id: str = "camera",
    encoding: Encoding = "32FC1",
) -> tuple[dict[str, Any], bytes]:
    """The (header, pixel bytes) of one depth map. ``16UC1`` (millimetres) is for metric depth
    only."""
    if encoding == "16UC1":
        if kind is not DepthKind.METRIC_METERS:
            raise EdgedepthError(
                f"encoding 16UC1 (millimetres) is for metric depth only, not {kind.value}"
            )
        pixels = to_millimetres(depth)
    else:
        pixels = np.ascontiguousarray(depth, dtype="<f4")
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


def encode_header(header: dict[str, Any]) -> bytes:
    """The header as sent: compact UTF-8 JSON."""
    return json.dumps(header, separators=(",", ":")).encode()


# --- decoding -----------------------------------------------------------------------------------


def decode(topic: str, header_json: bytes, data: bytes) -> Message:
    """A message from its parts (topic, header JSON, pixel bytes); :class:`MessageError` if they
    are not in this module's format."""
    try:
        fields = json.loads(header_json)
        head = fields["header"]
        stamp = head["stamp"]["sec"] + head["stamp"]["nanosec"] / 1e9
        if fields["type"] == "CameraInfo":
            info = CameraInfo(
                topic=topic,
                seq=int(head["seq"]),
                stamp=stamp,
                frame_id=str(head["frame_id"]),
                height=int(fields["height"]),
                width=int(fields["width"]),
                k=tuple(float(v) for v in fields["k"]),
            )
            if len(info.k) != 9 or info.height < 0 or info.width < 0:
                raise ValueError("k must hold 9 numbers, height and width must be >= 0")
            return info
        message = DepthImage(
            topic=topic,
            seq=int(head["seq"]),
            stamp=stamp,
            frame_id=str(head["frame_id"]),
            height=int(fields["height"]),
            width=int(fields["width"]),
            encoding=str(fields["encoding"]),
            step=int(fields["step"]),
            depth_kind=DepthKind(fields["depth_kind"]),
            data=bytes(data),
            is_bigendian=int(fields.get("is_bigendian", 0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise MessageError(f"{topic}: not a depth topic message ({exc!r})") from None
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


# --- zenoh helpers ------------------------------------------------------------------------------


def import_zenoh() -> Any:
    """The ``zenoh`` module, or a one-line error saying how to install it."""
    try:
        import zenoh
    except ImportError:
        raise EdgedepthError(
            "transport zenoh needs eclipse-zenoh: pip install 'edgedepth[zenoh]'"
        ) from None
    return zenoh


def zenoh_error(exc: BaseException) -> str:
    """Zenoh's error text without the Rust source locations it appends."""
    text = str(exc).split(" at /", 1)[0].strip()
    if text.count("[") > text.count("]"):
        text = text.replace("[", "")
    return text


def zenoh_locator(endpoint: str) -> str:
    """``tcp://127.0.0.1:7447`` (ZeroMQ style) → ``tcp/127.0.0.1:7447`` (zenoh); zenoh locators
    are returned as they are."""
    return endpoint.replace("://", "/", 1)


def zenoh_config(listen: Sequence[str] = (), connect: Sequence[str] = ()) -> Any:
    """A zenoh peer config with explicit endpoints and multicast scouting off (multicast is often
    blocked; explicit endpoints are what several machines, routers and rmw_zenoh use)."""
    zenoh = import_zenoh()
    config = zenoh.Config()
    try:
        config.insert_json5("mode", '"peer"')
        config.insert_json5("scouting/multicast/enabled", "false")
        if listen:
            config.insert_json5("listen/endpoints", json.dumps([zenoh_locator(e) for e in listen]))
        if connect:
            locators = [zenoh_locator(e) for e in connect]
            config.insert_json5("connect/endpoints", json.dumps(locators))
    except zenoh.ZError as exc:
        raise EdgedepthError(
            f"endpoint {', '.join([*listen, *connect])}: {zenoh_error(exc)}"
        ) from None
    return config


def open_zenoh(listen: Sequence[str] = (), connect: Sequence[str] = ()) -> Any:
    """An open zenoh session (peer mode, see :func:`zenoh_config`)."""
    zenoh = import_zenoh()
    config = zenoh_config(listen, connect)
    try:
        return zenoh.open(config)
    except zenoh.ZError as exc:
        raise EdgedepthError(
            f"endpoint {', '.join([*listen, *connect])}: zenoh cannot open: {zenoh_error(exc)}"
        ) from None


# --- subscriber ---------------------------------------------------------------------------------


class TopicSubscriber:
    """Receive and decode the messages of the ``topic`` sink::

        with TopicSubscriber("tcp://127.0.0.1:5556", ("depth/image",)) as subscriber:
            message = subscriber.receive(timeout=1.0)  # DepthImage, CameraInfo or None
            if isinstance(message, DepthImage):
                print(message.seq, message.meters.max())

    ``topics`` are prefixes (``""``: everything); with zenoh, a topic and everything under it,
    on the rmw_zenoh key expressions of ROS domain ``domain_id``.
    ``queue_size`` messages wait here at most: a subscriber slower than the publisher loses
    messages (``missed`` counts the gaps in ``seq``) instead of growing a backlog.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        topics: Sequence[str] = ("",),
        transport: Transport = "zmq",
        queue_size: int = 100,
        domain_id: int = 0,
    ) -> None:
        self.endpoint = endpoint
        self.transport = transport
        #: Images not received, judged from the gaps in ``seq`` per topic.
        self.missed = 0
        self._last_seq: dict[str, int] = {}
        topics = list(topics) or [""]
        if transport == "zmq":
            self._open_zmq(endpoint, topics, queue_size)
        elif transport == "zenoh":
            self._open_zenoh(endpoint, topics, queue_size, domain_id)
        else:
            raise EdgedepthError(f"transport {transport!r}: expected zmq or zenoh")

    def _open_zmq(self, endpoint: str, topics: list[str], queue_size: int) -> None:
        import zmq

        self._zmq = zmq
        self._socket = zmq.Context.instance().socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, queue_size)
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close()
            raise EdgedepthError(f"endpoint {endpoint}: cannot connect: {exc}") from None
        for topic in topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())

    def _open_zenoh(
        self, endpoint: str, topics: list[str], queue_size: int, domain_id: int
    ) -> None:
        self._session = open_zenoh(connect=[endpoint])
        self._received: queue.Queue[Message | MessageError] = queue.Queue(maxsize=queue_size)
        # "0/a/**" matches topic "a" and everything under it (type and hash are the last chunks).
        keys = sorted({f"{domain_id}/{topic.strip('/')}/**".replace("//", "/") for topic in topics})
        self._subscribers = [self._session.declare_subscriber(key, self._on_sample) for key in keys]

    def _on_sample(self, sample: Any) -> None:
        """Zenoh callback (a zenoh thread): decode and queue, dropping the oldest when full."""
        from edgedepth.rmw_zenoh import decode_sample

        attachment = sample.attachment.to_bytes() if sample.attachment is not None else None
        message: Message | MessageError
        try:
            message = decode_sample(str(sample.key_expr), sample.payload.to_bytes(), attachment)
        except (ValueError, EdgedepthError) as exc:
            message = MessageError(str(exc))
        while True:
            try:
                self._received.put_nowait(message)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._received.get_nowait()

    def receive(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after ``timeout`` seconds (None: wait as long as it takes).
        Raises :class:`MessageError` for a message that is not in this module's format."""
        if self.transport == "zmq":
            if not self._socket.poll(None if timeout is None else max(0, int(timeout * 1000))):
                return None
            parts = self._socket.recv_multipart()
            topic = parts[0].decode(errors="replace")
            if len(parts) != 3:
                raise MessageError(f"{topic}: {len(parts)} parts, expected 3")
            message = decode(topic, parts[1], parts[2])
        else:
            try:
                received = self._received.get(timeout=timeout)
            except queue.Empty:
                return None
            if isinstance(received, MessageError):
                raise received
            message = received
        self._count_gap(message)
        return message

    def _count_gap(self, message: Message) -> None:
        if not isinstance(message, DepthImage):
            return
        last = self._last_seq.get(message.topic)
        if last is not None and message.seq > last + 1:
            self.missed += message.seq - last - 1
        self._last_seq[message.topic] = message.seq

    def close(self) -> None:
        """Disconnect (idempotent)."""
        if self.transport == "zmq":
            self._socket.close()
        elif self._subscribers:
            for subscriber in self._subscribers:
                subscriber.undeclare()
            self._subscribers = []
            self._session.close()

    def __enter__(self) -> TopicSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    stop: threading.Event | None = None,
    interval: float = 0.02,
) -> bool:
    """Poll ``predicate`` until it is true (→ True), ``timeout`` seconds pass or ``stop`` is set
    (→ False)."""
    deadline = time.monotonic() + timeout
    stop = stop or threading.Event()
    while not predicate():
        if time.monotonic() > deadline or stop.wait(interval):
            return False
    return True
