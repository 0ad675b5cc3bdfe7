"""Publishing and subscribing to depth topics: ZeroMQ (this package's JSON + pixels format) and
zenoh (rmw_zenoh's format, :mod:`edgedepth.topic.rmw_zenoh`). A publisher takes whole frames
and sends the messages of its transport; a subscriber returns
:class:`~edgedepth.topic.messages.DepthImage` / ``CameraInfo`` from either."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import DepthKind, Frame, Intrinsics
from edgedepth.topic.messages import (
    CAMERA_INFO_SUFFIX,
    DEFAULT_ENDPOINT,
    DEFAULT_RELATIVE_TOPIC,
    DepthImage,
    Encoding,
    Message,
    MessageError,
    Transport,
    decode,
    encode_camera_info,
    encode_header,
    encode_image,
    encode_points,
)
from edgedepth.topic.rmw_zenoh import RmwZenohNode, decode_sample
from edgedepth.topic.ros2 import (
    IMAGE,
    FrameStamps,
    FrameToMessages,
    RelativeEncoding,
    StampClock,
    encode_cdr,
    import_cdr_codec,
)
from edgedepth.topic.zenoh_session import (
    ZenohAuth,
    ZenohTls,
    import_zenoh,
    open_zenoh,
    unreached,
    zenoh_error,
)

log = logging.getLogger("edgedepth")

#: ZeroMQ: how long close() may still flush queued messages (ms). Never hangs the exit.
CLOSE_LINGER_MS = 100
#: ZeroMQ subscribers: a larger message drops the sender's connection (a 4K float32 depth
#: image is 33 MB).
MAX_MESSAGE_BYTES = 1 << 30
#: Zenoh ``connect``: seconds the start waits for a link to each endpoint before warning.
CONNECT_WAIT = 3.0
#: Seconds between two looks at whether a ``connect`` endpoint was reached, while publishing.
CONNECT_POLL = 1.0

# --- publishers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishSettings:
    """What a publisher puts in its messages, whatever the transport."""

    #: Topic of metric depth.
    topic: str = "depth/image"
    #: Topic of relative depth (None: the transport's default, see each publisher).
    relative_topic: str | None = None
    #: Metric depth: 32FC1 metres or 16UC1 millimetres (REP-118); relative depth is 32FC1.
    encoding: Encoding = "32FC1"
    frame_id: str = "camera"
    #: Pinhole intrinsics of the images: CameraInfo is published with each image.
    intrinsics: Intrinsics | None = None
    #: Degrees: the camera of frames without intrinsics (points, zenoh's CameraInfo).
    horizontal_fov: float | None = None
    relative_encoding: RelativeEncoding = "named"
    #: The PointCloud2 of metric depth on ``points_topic`` (``points_rgb``: coloured).
    points: bool = False
    points_topic: str = "depth/points"
    points_rgb: bool = False
    clock: StampClock = "epoch"

    def frame_to_messages(self, **overrides: Any) -> FrameToMessages:
        """The ROS 2 messages of a frame with these settings."""
        settings = {
            "frame_id": self.frame_id,
            "depth_topic": self.topic,
            "relative_topic": self.relative_topic,
            "depth_encoding": self.encoding,
            "relative_encoding": self.relative_encoding,
            "intrinsics": self.intrinsics,
            "horizontal_fov": self.horizontal_fov,
            "clock": self.clock,
            "points": self.points,
            "points_topic": self.points_topic,
            "points_rgb": self.points_rgb,
        }
        return FrameToMessages(**{**settings, **overrides})


class Publisher(Protocol):
    def topic_for(self, kind: DepthKind) -> str:
        """The topic depth of this kind is published on."""
        ...

    def subscribers(self, topic: str) -> int:
        """How many subscribers currently match ``topic`` (zenoh: 1 if any)."""
        ...

    def publish(self, frame: Frame) -> int:
        """Send the frame's messages without waiting; the number that could not be queued."""
        ...

    def close(self) -> None: ...


class ZmqPublisher:
    """An XPUB socket (a PUB socket that also reports subscriptions, to wait for them) sending
    this package's three-part messages. Sends never block: each subscriber has a queue of
    ``high_water_mark`` frames; what does not fit is dropped for that subscriber only."""

    def __init__(self, endpoint: str, settings: PublishSettings, high_water_mark: int) -> None:
        import zmq

        self.zmq = zmq
        self.endpoint = endpoint
        self.settings = settings
        self.stamps = FrameStamps(settings.clock)
        #: The point clouds, made as for ROS 2 and sent in this format.
        self.points = (
            settings.frame_to_messages(depth=False, camera_info=False) if settings.points else None
        )
        messages_per_frame = 1 + (settings.intrinsics is not None) + settings.points
        self.socket = zmq.Context.instance().socket(zmq.XPUB)
        self.socket.setsockopt(zmq.SNDHWM, high_water_mark * messages_per_frame)
        self.socket.setsockopt(zmq.LINGER, CLOSE_LINGER_MS)
        # Every (un)subscription, not only the first/last per topic: to count subscribers.
        self.socket.setsockopt(zmq.XPUB_VERBOSER, 1)
        try:
            self.socket.bind(endpoint)
        except zmq.ZMQError as exc:
            self.socket.close(0)
            raise EdgedepthError(f"endpoint {endpoint}: cannot bind: {exc}") from None
        #: Where it listens (a port ``*`` resolved).
        self.bound = self.socket.getsockopt_string(zmq.LAST_ENDPOINT) or endpoint
        #: topic prefix → number of subscribers subscribed to it
        self.subscriptions: dict[bytes, int] = {}

    def topic_for(self, kind: DepthKind) -> str:
        if kind is DepthKind.METRIC_METERS:
            return self.settings.topic
        return self.settings.relative_topic or DEFAULT_RELATIVE_TOPIC

    def subscribers(self, topic: str) -> int:
        while self.socket.poll(0):
            event = self.socket.recv()
            prefix, change = event[1:], 1 if event[:1] == b"\x01" else -1
            self.subscriptions[prefix] = max(0, self.subscriptions.get(prefix, 0) + change)
        name = topic.encode()
        return sum(n for prefix, n in self.subscriptions.items() if name.startswith(prefix))

    def publish(self, frame: Frame) -> int:
        assert frame.depth is not None and frame.depth_kind is not None
        settings = self.settings
        metric = frame.depth_kind is DepthKind.METRIC_METERS
        topic = self.topic_for(frame.depth_kind)
        stamp_ns = self.stamps(frame)
        stamp = stamp_ns / 1e9
        header, data = encode_image(
            frame.depth,
            frame.depth_kind,
            stamp,
            frame.index,
            settings.frame_id,
            settings.encoding if metric else "32FC1",
        )
        not_sent = 0
        if settings.intrinsics is not None:
            pinhole = settings.intrinsics
            info = encode_camera_info(
                (pinhole.fx, pinhole.fy, pinhole.cx, pinhole.cy),
                header["height"],
                header["width"],
                stamp,
                frame.index,
                settings.frame_id,
            )
            not_sent += not self._send(topic + CAMERA_INFO_SUFFIX, info, b"")
        not_sent += not self._send(topic, header, data)
        for message in self.points(frame, stamp_ns) if self.points else []:
            cloud, points = encode_points(message.fields, frame.index)
            not_sent += not self._send(message.topic, cloud, points)
        return not_sent

    def _send(self, topic: str, header: dict[str, Any], data: bytes) -> bool:
        try:
            self.socket.send_multipart(
                [topic.encode(), encode_header(header), data], flags=self.zmq.NOBLOCK
            )
        except self.zmq.Again:
            return False
        return True

    def close(self) -> None:
        self.socket.close()


class ZenohPublisher:
    """A zenoh peer session listening on ``endpoint``, publishing as a ROS 2 node on rmw_zenoh
    would (key expressions, CDR payloads, attachments, liveliness tokens), so ROS 2 nodes
    receive ``sensor_msgs/msg/Image`` and ``CameraInfo`` with no bridge."""

    def __init__(
        self,
        endpoint: str,
        settings: PublishSettings,
        connect: Sequence[str] = (),
        domain_id: int = 0,
        node_name: str = "edgedepth",
        tls: ZenohTls | None = None,
        auth: ZenohAuth | None = None,
        connect_wait: float = CONNECT_WAIT,
    ) -> None:
        self.zenoh = import_zenoh()
        import_cdr_codec()  # before binding: a missing extra is a one-line error up front
        self.bound = endpoint
        self.session = open_zenoh([endpoint], connect, tls, auth)
        self.node = RmwZenohNode(self.session, node_name, domain_id=domain_id)
        self.messages = settings.frame_to_messages()
        #: ``connect`` endpoints no link has reached yet (zenoh keeps trying in the background).
        self.unreached = list(connect)
        self._looked_at = 0.0
        if connect and not wait_until(self._reached_all, connect_wait):
            for missing in self.unreached:
                log.warning(
                    "warning: topic: connect %s: not connected after %g s (nothing answers "
                    "there: is the router running, e.g. ros2 run rmw_zenoh_cpp rmw_zenohd?); "
                    "zenoh keeps trying",
                    missing,
                    connect_wait,
                )

    def _reached_all(self) -> bool:
        """Drop the endpoints linked to now; whether none is left."""
        if self.unreached:
            still = set(unreached(self.session, self.unreached))
            self.unreached = [endpoint for endpoint in self.unreached if endpoint in still]
        self._looked_at = time.monotonic()
        return not self.unreached

    def topic_for(self, kind: DepthKind) -> str:
        return self.messages.depth_topic_for(kind)

    def subscribers(self, topic: str) -> int:
        return int(self.node.publisher(topic, IMAGE).matching)

    def publish(self, frame: Frame) -> int:
        if self.unreached and time.monotonic() - self._looked_at > CONNECT_POLL:
            self._reached_all()
        not_sent = 0
        for message in self.messages(frame):
            try:
                self.node.publisher(message.topic, message.type_name).put(
                    encode_cdr(message.type_name, message.fields)
                )
            except self.zenoh.ZError as exc:
                log.debug("topic: zenoh put on %s failed: %s", message.topic, zenoh_error(exc))
                not_sent += 1
        return not_sent

    def close(self) -> None:
        """Undeclare and close; then a one-line error naming each ``connect`` endpoint never
        reached: no node there received anything."""
        if self.unreached:
            self._reached_all()
        self.node.close()
        self.session.close()
        if self.unreached:
            raise EdgedepthError(
                f"connect {', '.join(self.unreached)}: never connected: nothing there received "
                "the frames (is the router running, e.g. ros2 run rmw_zenoh_cpp rmw_zenohd?)"
            )


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
        tls: ZenohTls | None = None,
        auth: ZenohAuth | None = None,
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
            self._open_zenoh(endpoint, topics, queue_size, domain_id, tls, auth)
        else:
            raise EdgedepthError(f"transport {transport!r}: expected zmq or zenoh")

    def _open_zmq(self, endpoint: str, topics: list[str], queue_size: int) -> None:
        import zmq

        self._zmq = zmq
        self._socket = zmq.Context.instance().socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, queue_size)
        # A larger message (a sender gone wrong) drops its connection instead of the memory.
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close()
            raise EdgedepthError(f"endpoint {endpoint}: cannot connect: {exc}") from None
        for topic in topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())

    def _open_zenoh(
        self,
        endpoint: str,
        topics: list[str],
        queue_size: int,
        domain_id: int,
        tls: ZenohTls | None,
        auth: ZenohAuth | None,
    ) -> None:
        self._session = open_zenoh(connect=[endpoint], tls=tls, auth=auth)
        self._received: queue.Queue[Message | MessageError] = queue.Queue(maxsize=queue_size)
        # "0/a/**" matches topic "a" and everything under it (type and hash are the last chunks).
        keys = sorted({f"{domain_id}/{topic.strip('/')}/**".replace("//", "/") for topic in topics})
        self._subscribers = [self._session.declare_subscriber(key, self._on_sample) for key in keys]

    def _on_sample(self, sample: Any) -> None:
        """Zenoh callback (a zenoh thread): decode and queue, dropping the oldest when full.
        A sample is untrusted: whatever fails in decoding it is queued as one
        :class:`MessageError` (a raise here would be printed by zenoh, a traceback a sample)."""
        message: Message | MessageError
        try:
            attachment = sample.attachment.to_bytes() if sample.attachment is not None else None
            message = decode_sample(str(sample.key_expr), sample.payload.to_bytes(), attachment)
        except Exception as exc:
            message = MessageError(str(exc) or type(exc).__name__)
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
