"""``topic``: publish every depth frame as a ROS-like Image message (REP-118 units) over ZeroMQ
(default, bound to 127.0.0.1) or Zenoh; and ``edgedepth topic echo`` to watch a topic.

A slow subscriber never blocks the pipeline: each subscriber has a bounded queue
(``high_water_mark`` messages) and what does not fit is dropped for that subscriber only.
The message format is documented in :mod:`edgedepth.topic`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import click
import numpy as np
from pydantic import Field

import edgedepth
from edgedepth.cli import debug_option, user_errors
from edgedepth.config import StrictModel
from edgedepth.errors import EdgedepthError
from edgedepth.frame import DepthKind, Frame
from edgedepth.stages import BuildContext
from edgedepth.topic import (
    DEFAULT_ENDPOINT,
    DEFAULT_RELATIVE_TOPIC,
    DEFAULT_TOPIC,
    DepthImage,
    Encoding,
    TopicSubscriber,
    Transport,
    encode_camera_info,
    encode_image,
    wait_until,
    zenoh_config,
    zenoh_endpoint,
)

log = logging.getLogger("edgedepth")


class CameraIntrinsics(StrictModel):
    fx: float = Field(gt=0)
    fy: float = Field(gt=0)
    cx: float
    cy: float


class TopicOptions(StrictModel):
    transport: Transport = "zmq"
    #: Where to publish. ZeroMQ: the address bound (127.0.0.1 unless you mean to expose it:
    #: tcp://0.0.0.0:5556 publishes to the whole network). Zenoh: the locator listened on.
    endpoint: str = DEFAULT_ENDPOINT
    #: Zenoh only: routers or peers to connect to as well (e.g. tcp/192.168.1.10:7447).
    connect: list[str] = Field(default_factory=list)
    #: Metric depth topic, and the separate topic for relative depth.
    topic: str = DEFAULT_TOPIC
    relative_topic: str = DEFAULT_RELATIVE_TOPIC
    #: Metric depth: 32FC1 metres or 16UC1 millimetres (REP-118). Relative depth is always 32FC1.
    encoding: Encoding = "32FC1"
    frame_id: str = "camera"
    #: Publish CameraInfo (K) on ``<topic>/camera_info`` with every frame.
    camera_info: CameraIntrinsics | None = None
    #: Messages queued per subscriber before further ones are dropped for it.
    high_water_mark: int = Field(30, ge=1)
    #: Wait (up to ``subscriber_timeout`` s) for this many subscribers before the first frame,
    #: so that a subscriber started first sees every frame (ZeroMQ's "slow joiner").
    wait_for_subscribers: int = Field(0, ge=0)
    subscriber_timeout: float = Field(10.0, gt=0)


class ZmqPublisher:
    """An XPUB socket: like PUB, but it also tells us about subscriptions (to wait for them)."""

    def __init__(self, options: TopicOptions) -> None:
        import zmq

        self.zmq = zmq
        self.socket = zmq.Context.instance().socket(zmq.XPUB)
        self.socket.setsockopt(zmq.SNDHWM, options.high_water_mark)
        self.socket.setsockopt(zmq.LINGER, 200)  # ms: flush what is queued, never hang on exit
        try:
            self.socket.bind(options.endpoint)
        except zmq.ZMQError as exc:
            self.socket.close(0)
            raise EdgedepthError(f"endpoint {options.endpoint}: cannot bind: {exc}") from None
        self.subscriptions = 0

    def poll_subscriptions(self) -> int:
        while self.socket.poll(0):
            event = self.socket.recv()
            self.subscriptions += 1 if event[:1] == b"\x01" else -1
        return self.subscriptions

    def send(self, topic: str, header: dict[str, Any], data: bytes) -> bool:
        try:
            self.socket.send_multipart(
                [topic.encode(), json.dumps(header).encode(), data], flags=self.zmq.NOBLOCK
            )
            return True
        except self.zmq.Again:
            return False

    def close(self) -> None:
        self.socket.close()


class ZenohPublisher:
    def __init__(self, options: TopicOptions) -> None:
        import zenoh

        try:
            self.session = zenoh.open(
                zenoh_config([zenoh_endpoint(options.endpoint)], options.connect)
            )
        except zenoh.ZError as exc:
            raise EdgedepthError(f"endpoint {options.endpoint}: zenoh cannot open: {exc}") from None
        self.publishers: dict[str, Any] = {}

    def publisher(self, topic: str) -> Any:
        if topic not in self.publishers:
            self.publishers[topic] = self.session.declare_publisher(topic)
        return self.publishers[topic]

    def poll_subscriptions(self, topic: str) -> int:
        return int(self.publisher(topic).matching_status.matching)

    def send(self, topic: str, header: dict[str, Any], data: bytes) -> bool:
        self.publisher(topic).put(data, attachment=json.dumps(header).encode())
        return True

    def close(self) -> None:
        for publisher in self.publishers.values():
            publisher.undeclare()
        self.session.close()


class TopicSink:
    def __init__(self, options: TopicOptions, context: BuildContext) -> None:
        self.options = options
        self.transport = (
            ZmqPublisher(options) if options.transport == "zmq" else ZenohPublisher(options)
        )
        self.sent = 0
        self.not_sent = 0
        self._subscribers_ready = options.wait_for_subscribers == 0

    def _wait_for_subscribers(self, topic: str) -> None:
        wanted = self.options.wait_for_subscribers
        log.info("topic: waiting for %d subscriber(s) on %s", wanted, self.options.endpoint)
        if isinstance(self.transport, ZmqPublisher):
            ready = wait_until(lambda: self.transport.poll_subscriptions() >= wanted,
                               self.options.subscriber_timeout)  # fmt: skip
        else:
            ready = wait_until(lambda: self.transport.poll_subscriptions(topic) >= min(wanted, 1),
                               self.options.subscriber_timeout)  # fmt: skip
        if not ready:
            log.warning("topic: fewer than %d subscriber(s) after %.0f s; publishing anyway",
                        wanted, self.options.subscriber_timeout)  # fmt: skip
        self._subscribers_ready = True

    def write(self, frame: Frame) -> None:
        assert frame.depth is not None and frame.depth_kind is not None
        metric = frame.depth_kind is DepthKind.METRIC_METERS
        topic = self.options.topic if metric else self.options.relative_topic
        if not self._subscribers_ready:
            self._wait_for_subscribers(topic)
        header, data = encode_image(
            frame.depth,
            frame.depth_kind,
            frame.timestamp,
            frame.index,
            self.options.frame_id,
            self.options.encoding if metric else "32FC1",
        )
        if self.options.camera_info is not None:
            k = self.options.camera_info
            info = encode_camera_info(
                (k.fx, k.fy, k.cx, k.cy), *frame.depth.shape, frame.timestamp, frame.index,
                self.options.frame_id,
            )  # fmt: skip
            self.transport.send(f"{topic}/camera_info", info, b"")
        if self.transport.send(topic, header, data):
            self.sent += 1
        else:
            self.not_sent += 1

    def close(self) -> None:
        if self.not_sent:
            log.warning("topic: %d message(s) not sent (send queue full)", self.not_sent)
        self.transport.close()


# --- edgedepth topic echo ------------------------------------------------------------------------


def describe(message: Any) -> str:
    if isinstance(message, DepthImage):
        depth = message.depth
        valid = depth[np.isfinite(depth) & (depth > 0)] if depth.size else depth
        value_range = f"{valid.min():.3f}..{valid.max():.3f}" if valid.size else "empty"
        return (
            f"{message.topic} seq={message.seq} stamp={message.stamp:.3f} "
            f"frame_id={message.frame_id} {message.width}x{message.height} {message.encoding} "
            f"({message.depth_kind.value}) range {value_range}"
        )
    return (
        f"{message.topic} seq={message.seq} stamp={message.stamp:.3f} CameraInfo "
        f"{message.width}x{message.height} fx={message.k[0]:.1f} fy={message.k[4]:.1f}"
    )


@click.group()
def topic() -> None:
    """Depth topics published by the `topic` sink."""


@topic.command()
@click.argument("endpoint", default=DEFAULT_ENDPOINT)
@click.option("--topic", "topics", multiple=True, help="Topic (prefix) to receive; repeatable.")
@click.option("--count", type=int, default=None, help="Exit after this many messages.")
@click.option("--transport", type=click.Choice(["zmq", "zenoh"]), default="zmq")
@click.option("--timeout", type=float, default=None, help="Exit with an error after this long.")
@debug_option
def echo(
    endpoint: str,
    topics: tuple[str, ...],
    count: int | None,
    transport: str,
    timeout: float | None,
    debug: bool,
) -> None:
    """Print each received message's header and the receive rate."""
    with user_errors(debug):
        received, window_start, window_count = 0, time.monotonic(), 0
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with TopicSubscriber(endpoint, topics or ("",), transport) as subscriber:  # type: ignore[arg-type]
                while count is None or received < count:
                    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                    message = subscriber.receive(timeout=wait)
                    if message is None:
                        raise EdgedepthError(
                            f"no message from {endpoint} within {timeout:g} s (received {received})"
                        )
                    received += 1
                    window_count += 1
                    click.echo(describe(message))
                    elapsed = time.monotonic() - window_start
                    if elapsed >= 2.0:
                        click.echo(f"# {window_count / elapsed:.1f} Hz", err=True)
                        window_start, window_count = time.monotonic(), 0
        except KeyboardInterrupt:
            pass  # Ctrl-C is how echo is meant to end


@edgedepth.hookimpl
def register_sinks(register):
    register(
        "topic",
        TopicOptions,
        TopicSink,
        description="ROS-like Image messages (32FC1 m / 16UC1 mm) over ZeroMQ or Zenoh",
    )


@edgedepth.hookimpl
def register_commands(cli):
    cli.add_command(topic)
