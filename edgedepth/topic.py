"""ROS-like depth messages on a topic: the message format, and a subscriber that decodes them.

Messages are shaped like ``sensor_msgs/Image`` and ``sensor_msgs/CameraInfo`` (REP-118 for
depth: ``32FC1`` in metres or ``16UC1`` in millimetres, 0 = no measurement). Relative depth is
published on its own topic with encoding ``32FC1`` and ``depth_kind`` naming what it is, so a
subscriber cannot take it for metres.

Wire format (one message; language-neutral):

- ZeroMQ (PUB/SUB, the default): a multipart message ``[topic, header, data]``: the topic as UTF-8
  (SUB sockets filter on it as a prefix), the header as UTF-8 JSON, and the raw row-major pixel
  data (little endian, ``step`` bytes per row). Camera info has an empty data part.
- Zenoh: key expression = topic, payload = data, attachment = the header JSON.

Header fields: ``type`` ("Image" or "CameraInfo"), ``header`` {``stamp`` {``sec``, ``nanosec``},
``frame_id``, ``seq``}, and for images ``height``, ``width``, ``encoding``, ``is_bigendian`` (0),
``step``, ``depth_kind``; for camera info ``height``, ``width``, ``distortion_model``, ``d``,
``k`` (3×3 row-major), ``r``, ``p``.
"""

from __future__ import annotations

import json
import queue
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from edgedepth.errors import EdgedepthError
from edgedepth.frame import DepthKind

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
DEFAULT_TOPIC = "depth/image"
DEFAULT_RELATIVE_TOPIC = "depth/relative"
Encoding = Literal["32FC1", "16UC1"]
Transport = Literal["zmq", "zenoh"]


@dataclass(frozen=True)
class DepthImage:
    """A received depth image."""

    topic: str
    seq: int
    stamp: float
    frame_id: str
    height: int
    width: int
    encoding: str
    step: int
    depth_kind: DepthKind
    data: bytes

    @property
    def depth(self) -> np.ndarray:
        """The pixels as sent: float32 (32FC1) or uint16 millimetres (16UC1), H×W."""
        dtype = np.dtype("<f4") if self.encoding == "32FC1" else np.dtype("<u2")
        rows = np.frombuffer(self.data, dtype=np.uint8).reshape(self.height, self.step)
        return rows[:, : self.width * dtype.itemsize].view(dtype).reshape(self.height, self.width)

    @property
    def meters(self) -> np.ndarray:
        """Metric depth in metres (float32; 0 where 16UC1 had no measurement)."""
        if self.depth_kind is not DepthKind.METRIC_METERS:
            raise ValueError(f"{self.topic} carries {self.depth_kind.value}, not metres")
        if self.encoding == "16UC1":
            return self.depth.astype(np.float32) / 1000.0
        return self.depth.astype(np.float32)


@dataclass(frozen=True)
class CameraInfo:
    topic: str
    seq: int
    stamp: float
    frame_id: str
    height: int
    width: int
    k: tuple[float, ...]

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.k, dtype=np.float64).reshape(3, 3)


Message = DepthImage | CameraInfo


def _header(stamp: float, frame_id: str, seq: int) -> dict[str, Any]:
    nanoseconds = round(stamp * 1e9)
    return {
        "stamp": {"sec": nanoseconds // 1_000_000_000, "nanosec": nanoseconds % 1_000_000_000},
        "frame_id": frame_id,
        "seq": seq,
    }


def encode_image(
    depth: np.ndarray,
    kind: DepthKind,
    stamp: float,
    seq: int,
    frame_id: str = "camera",
    encoding: Encoding = "32FC1",
) -> tuple[dict[str, Any], bytes]:
    """(header, data) for one depth map. ``16UC1`` is for metric depth only: millimetres,
    rounded, 0 for invalid or non-positive, clamped to 65535."""
    if encoding == "16UC1":
        if kind is not DepthKind.METRIC_METERS:
            raise EdgedepthError("encoding 16UC1 (millimetres) is for metric depth only")
        millimetres = np.nan_to_num(np.asarray(depth, np.float64) * 1000.0, nan=0.0)
        pixels = np.clip(np.rint(millimetres), 0, 65535).astype("<u2")
    else:
        pixels = np.ascontiguousarray(depth, dtype="<f4")
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


def decode(topic: str, header_json: bytes, data: bytes) -> Message:
    """A message from its three parts (topic, header JSON, data)."""
    fields = json.loads(header_json)
    head = fields["header"]
    stamp = head["stamp"]["sec"] + head["stamp"]["nanosec"] / 1e9
    if fields["type"] == "CameraInfo":
        return CameraInfo(
            topic, head["seq"], stamp, head["frame_id"], fields["height"], fields["width"],
            tuple(fields["k"]),
        )  # fmt: skip
    return DepthImage(
        topic=topic,
        seq=head["seq"],
        stamp=stamp,
        frame_id=head["frame_id"],
        height=fields["height"],
        width=fields["width"],
        encoding=fields["encoding"],
        step=fields["step"],
        depth_kind=DepthKind(fields["depth_kind"]),
        data=data,
    )


def zenoh_config(listen: list[str] | None = None, connect: list[str] | None = None) -> Any:
    """A zenoh peer config with explicit endpoints and multicast scouting off (it is often
    blocked, and explicit endpoints are what several-machine setups and rmw_zenoh use)."""
    try:
        import zenoh
    except ImportError:
        raise EdgedepthError(
            "transport zenoh needs eclipse-zenoh: pip install 'edgedepth[zenoh]'"
        ) from None
    config = zenoh.Config()
    config.insert_json5("mode", '"peer"')
    config.insert_json5("scouting/multicast/enabled", "false")
    if listen:
        config.insert_json5("listen/endpoints", json.dumps(listen))
    if connect:
        config.insert_json5("connect/endpoints", json.dumps(connect))
    return config


def zenoh_endpoint(endpoint: str) -> str:
    """'tcp://127.0.0.1:7447' (ZeroMQ style) → 'tcp/127.0.0.1:7447' (zenoh locator)."""
    return endpoint.replace("://", "/", 1)


class TopicSubscriber:
    """Receive and decode messages::

    with TopicSubscriber("tcp://127.0.0.1:5556") as subscriber:
        message = subscriber.receive(timeout=1.0)   # DepthImage, CameraInfo or None
        depth = message.meters
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        topics: tuple[str, ...] = ("",),
        transport: Transport = "zmq",
    ) -> None:
        self.endpoint = endpoint
        self.transport = transport
        if transport == "zmq":
            import zmq

            self._context = zmq.Context.instance()
            self._socket = self._context.socket(zmq.SUB)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.RCVHWM, 1000)
            try:
                self._socket.connect(endpoint)
            except zmq.ZMQError as exc:
                self._socket.close()
                raise EdgedepthError(f"cannot connect to {endpoint}: {exc}") from None
            for topic in topics:
                self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        else:
            import zenoh

            self._session = zenoh.open(zenoh_config(connect=[zenoh_endpoint(endpoint)]))
            self._received: queue.Queue[Message] = queue.Queue()
            # ZeroMQ filters by prefix; in zenoh, a topic and everything under it.
            keys = [f"{t}/**" if t else "**" for t in topics]  # "a/**" matches "a" too
            self._subscribers = [
                self._session.declare_subscriber(key, self._on_sample) for key in keys
            ]

    def _on_sample(self, sample: Any) -> None:
        attachment = sample.attachment.to_bytes() if sample.attachment is not None else b"{}"
        self._received.put(decode(str(sample.key_expr), attachment, sample.payload.to_bytes()))

    def receive(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after ``timeout`` seconds (None: wait for ever)."""
        if self.transport == "zmq":
            if not self._socket.poll(None if timeout is None else int(timeout * 1000)):
                return None
            topic, header_json, data = self._socket.recv_multipart()
            return decode(topic.decode(), header_json, data)
        try:
            return self._received.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        if self.transport == "zmq":
            self._socket.close()
        else:
            for subscriber in self._subscribers:
                subscriber.undeclare()
            self._session.close()

    def __enter__(self) -> TopicSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
