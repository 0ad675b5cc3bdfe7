"""``topic``: publish every depth frame as a ROS-like Image message (REP-118 units) over ZeroMQ
(default) or Zenoh; and ``edgedepth topic echo`` to watch a topic.

ZeroMQ binds ``tcp://127.0.0.1:5556`` by default: only this machine can subscribe. Any other
address (``tcp://0.0.0.0:5556``, ``tcp://*:5556``, zenoh ``tcp/0.0.0.0:7447``, a LAN address)
serves the stream to other machines and is refused unless ``expose_to_network: true`` says so;
the run then logs the endpoint and who can reach it. ZeroMQ's stream is neither encrypted nor
authenticated; for remote use, zenoh with ``tls`` (and ``auth``) is (README: "Expose a depth
stream safely").

A slow subscriber never slows the pipeline: sends never block, and each subscriber has a queue
of ``high_water_mark`` frames; what does not fit is dropped for that subscriber only (it sees a
gap in ``seq``). In file mode, ``wait_for_subscribers: 1`` (hold the first frame until a
subscriber is connected) with a ``high_water_mark`` of the whole run makes a subscriber that keeps
up receive every frame. The message format and the publishers are in :mod:`edgedepth.topic`:
this plugin holds the options, the sink and ``edgedepth topic echo``.

``transport: zenoh`` speaks rmw_zenoh's wire format (:mod:`edgedepth.topic.rmw_zenoh`): ROS 2
nodes on ``rmw_zenoh_cpp`` (Jazzy, Kilted, Rolling) receive ``sensor_msgs/msg/Image``,
``CameraInfo`` and (``points: true``) ``PointCloud2`` with no bridge; ``connect:
[tcp/localhost:7447]`` joins their router. A ``connect`` endpoint not reached within 3 s is a
warning at start (zenoh keeps trying); one never reached during the run is an error at its end
(exit 1), and ``edgedepth check`` fails on it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import click
import numpy as np
from pydantic import Field, field_validator, model_validator

import edgedepth
from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import Frame
from edgedepth.api.options import CameraIntrinsics, HorizontalFov, StrictModel
from edgedepth.api.stages import BuildContext
from edgedepth.cli import debug_option, user_errors
from edgedepth.engine.config import validate
from edgedepth.media.pointcloud import check_points
from edgedepth.topic import (
    DEFAULT_ENDPOINT,
    DEFAULT_TOPIC,
    DepthImage,
    Encoding,
    Message,
    MessageError,
    PointCloud,
    Publisher,
    PublishSettings,
    TopicSubscriber,
    Transport,
    ZenohPublisher,
    ZmqPublisher,
    wait_until,
)
from edgedepth.topic.endpoints import exposure, parse_endpoint
from edgedepth.topic.mcap_recording import RecordedMessage, read_mcap
from edgedepth.topic.messages import bounded
from edgedepth.topic.rmw_zenoh import domain_id_from_env
from edgedepth.topic.ros2 import (
    COMPRESSED_IMAGE,
    IMAGE,
    RelativeEncoding,
    StampClock,
    check_topic_name,
    fully_qualified,
    stamp_seconds,
)
from edgedepth.topic.zenoh_session import ZenohAuth, ZenohTls

log = logging.getLogger("edgedepth")


class TopicOptions(StrictModel):
    transport: Transport = "zmq"
    """``zmq``: ZeroMQ PUB (edgedepth's own messages); ``zenoh``: ROS 2 over rmw_zenoh."""
    endpoint: str = DEFAULT_ENDPOINT
    """ZeroMQ: the address bound. Zenoh: the locator listened on (tcp://HOST:PORT,
    tcp/HOST:PORT, tls/HOST:PORT). Anything but loopback needs ``expose_to_network``."""
    expose_to_network: bool = False
    """Allow an endpoint other machines can reach (``tcp://0.0.0.0:5556``, ``tcp://*:5556``, a
    LAN address): the run logs it and who can reach it. ZeroMQ is unencrypted and
    unauthenticated: anyone on those networks receives the frames; use zenoh with ``tls``
    and ``auth`` for remote subscribers."""
    tls: ZenohTls | None = None
    """Zenoh only: TLS on ``tls/HOST:PORT`` (certificate, private key, the CA that signs the
    subscribers' side; ``mutual: true`` for client certificates)."""
    auth: ZenohAuth | None = None
    """Zenoh only: user/password authentication (``users_file`` of ``user:password`` lines
    admitted; ``user`` + ``password_file`` when connecting to a router that asks)."""
    connect: list[str] = Field(default_factory=list)
    """Zenoh only: routers or peers to connect to as well (e.g. tcp/localhost:7447, the rmw_zenoh
    router ROS 2 nodes use)."""
    topic: str = DEFAULT_TOPIC
    """Topic of metric depth."""
    relative_topic: str | None = None
    """Topic of relative depth; omitted: ZeroMQ ``depth/relative``; zenoh
    ``depth/relative_disparity`` or ``depth/relative_depth``."""
    encoding: Encoding = "32FC1"
    """Metric depth: 32FC1 metres (NaN: no measurement) or 16UC1 millimetres (0: none, and
    beyond 65.535 m) (REP-117/118). Relative depth is float32 under ``relative_encoding``."""
    relative_encoding: RelativeEncoding = "named"
    """Relative depth's encoding: ``named`` (``relative_disparity_32FC1`` /
    ``relative_depth_32FC1``: no ROS node takes it for metres) or ``32FC1`` (viewable in RViz;
    relative only by its topic name, and on ZeroMQ its ``depth_kind``)."""
    frame_id: str = "camera"
    """``header.frame_id`` of every message."""
    camera_info: CameraIntrinsics | None = None
    """Intrinsics of the captured frames: CameraInfo (K) is published before every image
    (ZeroMQ on ``<topic>/camera_info``; zenoh on ``camera_info`` beside the image topic, there
    also with the source's intrinsics or ``horizontal_fov``)."""
    horizontal_fov: HorizontalFov | None = None
    """Degrees: a centred pinhole camera, for sources that report no intrinsics."""
    points: bool = False
    """Publish the PointCloud2 of metric depth on ``points_topic`` (organized, NaN where
    invalid, as depth_image_proc makes it); needs intrinsics (``camera_info``, the source's or
    ``horizontal_fov``)."""
    points_topic: str = "depth/points"
    """Topic of the point clouds."""
    points_rgb: bool = False
    """Colour the points (``rgb`` field, depth_image_proc's xyzrgb)."""
    domain_id: int | None = Field(None, ge=0, le=232)
    """Zenoh only: ROS_DOMAIN_ID (omitted: the environment's, else 0)."""
    node_name: str = "edgedepth"
    """Zenoh only: the ROS 2 node name its publishers belong to."""
    stamp: StampClock = "epoch"
    """Header stamps: ``epoch`` (the wall clock at capture, as a ROS driver stamps) or ``media``
    (seconds from the stream start)."""
    high_water_mark: int = Field(2, ge=1)
    """ZeroMQ: frames queued per subscriber; newer ones are dropped for that subscriber."""
    wait_for_subscribers: int = Field(0, ge=0)
    """Before the first frame, wait for this many subscriptions to its topic (zenoh: for one), at
    most ``subscriber_timeout`` s; then publish anyway. Solves ZeroMQ's "slow joiner"."""
    subscriber_timeout: float = Field(10.0, gt=0)
    """Seconds ``wait_for_subscribers`` waits at most."""

    @field_validator("endpoint", "connect")
    @classmethod
    def _is_an_endpoint(cls, value: str | list[str]) -> str | list[str]:
        for endpoint in [value] if isinstance(value, str) else value:
            parse_endpoint(endpoint)
        return value

    @model_validator(mode="after")
    def _exposed_only_when_asked(self) -> TopicOptions:
        endpoint = parse_endpoint(self.endpoint)
        reach = exposure(endpoint)
        if reach is not None and not self.expose_to_network:
            secured = self.transport == "zenoh" and self.tls is not None
            anyone = ": anyone there receives the frames, unencrypted and unauthenticated"
            raise ValueError(
                f"endpoint {self.endpoint} serves {reach}{' (TLS)' if secured else anyone}: "
                "set expose_to_network: true if that is meant, or listen on 127.0.0.1 (README: "
                '"Expose a depth stream safely")'
            )
        if self.transport == "zmq" and (self.tls is not None or self.auth is not None):
            raise ValueError("tls and auth are zenoh's: set transport: zenoh")
        if self.tls is not None:
            if endpoint.protocol != "tls":
                raise ValueError(f"tls: listen on a tls/HOST:PORT locator, not {self.endpoint}")
            if self.tls.certificate is None or self.tls.private_key is None:
                raise ValueError("tls: listening needs certificate and private_key")
        elif endpoint.protocol == "tls":
            raise ValueError(f"endpoint {self.endpoint}: a tls/ locator needs the tls options")
        return self

    def security(self) -> str:
        """How the stream is protected, for the log."""
        if self.transport == "zmq" or self.tls is None:
            return "unencrypted, unauthenticated"
        users = self.auth is not None and self.auth.users_file is not None
        mutual = self.tls.mutual
        return (
            "TLS"
            + (", client certificates" if mutual else "")
            + (", user/password" if users else ", no user/password")
        )

    @field_validator("topic", "relative_topic", "points_topic")
    @classmethod
    def _not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip("/"):
            raise ValueError("a topic name cannot be empty")
        return value

    @model_validator(mode="after")
    def _ros_names_on_zenoh(self) -> TopicOptions:
        if self.transport == "zenoh":
            for name in (self.topic, self.relative_topic, self.points_topic, self.node_name):
                if name is not None:
                    check_topic_name(name)
        return self


def announce(options: TopicOptions, bound: str) -> None:
    """Say where the topic listens (``bound``: a port ``*`` resolved) and who can reach it: a
    warning when other machines can."""
    reach = exposure(parse_endpoint(options.endpoint))
    if reach is None:
        log.info("topic: listening on %s (this machine only)", bound)
    else:
        log.warning(
            "warning: topic: listening on %s: reachable from %s (%s)",
            bound,
            reach,
            options.security(),
        )


class TopicSink:
    """Publishes each frame's depth (and camera info) on its topic."""

    def __init__(self, options: TopicOptions, context: BuildContext | None) -> None:
        self.options = options
        intrinsics = options.camera_info.intrinsics if options.camera_info else None
        if options.points:
            check_points(context, intrinsics, options.horizontal_fov)
        settings = PublishSettings(
            topic=options.topic,
            relative_topic=options.relative_topic,
            encoding=options.encoding,
            frame_id=options.frame_id,
            intrinsics=intrinsics,
            horizontal_fov=options.horizontal_fov,
            relative_encoding=options.relative_encoding,
            points=options.points,
            points_topic=options.points_topic,
            points_rgb=options.points_rgb,
            clock=options.stamp,
        )
        self.publisher: Publisher
        if options.transport == "zmq":
            self.publisher = ZmqPublisher(options.endpoint, settings, options.high_water_mark)
        else:
            domain_id = options.domain_id if options.domain_id is not None else domain_id_from_env()
            self.publisher = ZenohPublisher(
                options.endpoint,
                settings,
                options.connect,
                domain_id,
                options.node_name,
                options.tls,
                options.auth,
            )
        announce(options, self.publisher.bound)
        self.published = 0
        #: Messages the transport refused without waiting (its queue was full).
        self.not_sent = 0
        self._waited = options.wait_for_subscribers == 0
        self._stop_requested = context.stop_requested if context else threading.Event()
        self._closed = False

    def _wait_for_subscribers(self, topic: str) -> None:
        wanted = self.options.wait_for_subscribers
        if isinstance(self.publisher, ZenohPublisher):
            wanted = 1  # zenoh says whether some subscriber matches, not how many
        timeout = self.options.subscriber_timeout
        log.info(
            "topic: waiting up to %g s for %d subscriber(s) to %s on %s",
            timeout, wanted, topic, self.options.endpoint,
        )  # fmt: skip
        subscribed = wait_until(
            lambda: self.publisher.subscribers(topic) >= wanted, timeout, self._stop_requested
        )
        if self._stop_requested.is_set():
            log.info("topic: stop requested while waiting for subscribers")
        elif not subscribed:
            log.warning(
                "topic: %d of %d subscriber(s) after %g s; publishing anyway",
                self.publisher.subscribers(topic), wanted, timeout,
            )  # fmt: skip
        self._waited = True

    def write(self, frame: Frame) -> None:
        assert frame.depth is not None and frame.depth_kind is not None
        if not self._waited:
            self._wait_for_subscribers(self.publisher.topic_for(frame.depth_kind))
        self.not_sent += self.publisher.publish(frame)
        self.published += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.not_sent:
            log.warning(
                "topic: %d message(s) dropped on %s (send queue full)",
                self.not_sent, self.options.endpoint,
            )  # fmt: skip
        self.publisher.close()


# --- edgedepth topic echo -----------------------------------------------------------------------


def describe(message: Message) -> str:
    """One line per message: topic, seq, stamp, size, encoding, kind and value range (a point
    cloud: its valid points and their bounds)."""
    if isinstance(message, PointCloud):
        fields = " ".join(message.fields)
        return (
            f"{message.topic} seq={message.seq} stamp={message.stamp:.3f} "
            f"{message.width}x{message.height} PointCloud2 {fields} {message.summary()}"
        )
    if isinstance(message, DepthImage):
        depth = message.depth
        valid = depth[np.isfinite(depth) & (depth > 0)]
        value_range = f"{valid.min():.3f}..{valid.max():.3f}" if valid.size else "no valid pixels"
        return (
            f"{message.topic} seq={message.seq} stamp={message.stamp:.3f} "
            f"{message.width}x{message.height} {message.encoding} {len(message.data)} B "
            f"{message.depth_kind.value} range={value_range}"
        )
    fx, _, cx, _, fy, cy = message.k[:6]
    return (
        f"{message.topic} seq={message.seq} stamp={message.stamp:.3f} "
        f"{message.width}x{message.height} CameraInfo fx={fx:.1f} fy={fy:.1f} "
        f"cx={cx:.1f} cy={cy:.1f}"
    )


def describe_recorded(recorded: RecordedMessage) -> str:
    """One line for a message of an MCAP recording (depth, camera info and point clouds as
    :func:`describe`, under the recorded topic name)."""
    message = recorded.message
    if message is not None:
        return describe(dataclasses.replace(message, topic=recorded.topic))
    ros_msg = recorded.ros_msg
    head = f"{recorded.topic} seq={recorded.sequence}"
    if recorded.type_name == IMAGE:
        return (
            f"{head} stamp={stamp_seconds(ros_msg):.3f} {ros_msg.width}x{ros_msg.height} "
            f"{ros_msg.encoding} {len(ros_msg.data)} B"
        )
    if recorded.type_name == COMPRESSED_IMAGE:
        return (
            f"{head} stamp={stamp_seconds(ros_msg):.3f} CompressedImage {ros_msg.format} "
            f"{len(ros_msg.data)} B"
        )
    return f"{head} {recorded.type_name} {len(recorded.data)} B"


class RateMeter:
    """Messages per second over windows of ``period`` seconds."""

    def __init__(self, period: float = 2.0) -> None:
        self.period = period
        self.started = self.window_start = time.monotonic()
        self.total = self.window = 0

    def tick(self) -> float | None:
        """Count a message; the rate (Hz) when a window has just ended, else None."""
        self.total += 1
        self.window += 1
        now = time.monotonic()
        if now - self.window_start < self.period:
            return None
        rate = self.window / (now - self.window_start)
        self.window_start, self.window = now, 0
        return rate


@click.group()
def topic() -> None:
    """Depth topics published by the `topic` sink, and MCAP recordings."""


@topic.command()
@click.argument("endpoint", default=DEFAULT_ENDPOINT)
@click.option(
    "--topic",
    "topics",
    multiple=True,
    help="Topic (prefix) to receive, e.g. depth/image; repeatable. Default: all.",
)
@click.option(
    "--count", type=click.IntRange(min=1), default=None, help="Exit after this many messages."
)
@click.option("--transport", type=click.Choice(["zmq", "zenoh"]), default="zmq", show_default=True)
@click.option(
    "--domain-id",
    type=click.IntRange(0, 232),
    default=None,
    help="Zenoh: ROS_DOMAIN_ID of the topics (default: the environment's, else 0).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Fail if no message arrives for this many seconds (default: wait).",
)
@click.option(
    "--tls-root-ca",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Zenoh over tls/HOST:PORT: the CA (PEM) that signed the publisher's certificate.",
)
@click.option(
    "--tls-certificate",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Zenoh TLS: this subscriber's certificate (PEM), when the publisher asks for one.",
)
@click.option(
    "--tls-private-key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Zenoh TLS: the private key (PEM) of --tls-certificate.",
)
@click.option("--user", default=None, help="Zenoh: the user to authenticate as.")
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Zenoh: a file holding --user's password.",
)
@debug_option
def echo(
    endpoint: str,
    topics: tuple[str, ...],
    count: int | None,
    transport: Transport,
    domain_id: int | None,
    timeout: float | None,
    tls_root_ca: Path | None,
    tls_certificate: Path | None,
    tls_private_key: Path | None,
    user: str | None,
    password_file: Path | None,
    debug: bool,
) -> None:
    """Print the header of each message received from ENDPOINT (default tcp://127.0.0.1:5556),
    and the receive rate on stderr every 2 s. Ctrl-C to stop. ENDPOINT may be an MCAP file
    (``run.mcap``): then its messages are printed. Every message is untrusted: one that is not
    a depth topic message is a one-line warning, and the stream goes on."""
    with user_errors(debug):
        if endpoint.endswith(".mcap") or Path(endpoint).is_file():
            echo_recording(Path(endpoint), topics, count)
            return
        if domain_id is None:
            domain_id = domain_id_from_env()
        tls = auth = None
        if tls_root_ca or tls_certificate or tls_private_key:
            tls = validate(
                ZenohTls,
                {"root_ca": tls_root_ca, "certificate": tls_certificate,
                 "private_key": tls_private_key},
                "topic echo --tls-*",
            )  # fmt: skip
        if user or password_file:
            auth = validate(
                ZenohAuth, {"user": user, "password_file": password_file}, "topic echo --user"
            )
        if transport != "zenoh" and (tls or auth):
            raise EdgedepthError("--tls-* and --user are for --transport zenoh")
        try:
            with TopicSubscriber(
                endpoint, topics or ("",), transport, domain_id=domain_id, tls=tls, auth=auth
            ) as subscriber:
                print_messages(subscriber, endpoint, count, timeout)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how echo is meant to end


def print_messages(
    subscriber: TopicSubscriber, endpoint: str, count: int | None, timeout: float | None
) -> None:
    """``topic echo``'s loop: a line per message; a malformed one is a warning (its text
    bounded), never the end of the stream."""
    meter = RateMeter()
    while count is None or meter.total < count:
        try:
            message = subscriber.receive(timeout=timeout)
        except MessageError as exc:
            click.echo(f"warning: {exc}", err=True)
            continue
        if message is None:
            raise EdgedepthError(
                f"endpoint {endpoint}: no message for {timeout:g} s "
                f"(received {meter.total}; is a `topic` sink publishing there?)"
            )
        try:
            line = describe(message)
        except Exception as exc:  # a message that passed the checks but not describe()
            click.echo(f"warning: {bounded(f'{message.topic}: {exc!r}')}", err=True)
            continue
        click.echo(line)
        rate = meter.tick()
        if rate is not None:
            click.echo(f"# {rate:.1f} Hz, {subscriber.missed} missed", err=True)


def echo_recording(path: Path, topics: tuple[str, ...], count: int | None) -> None:
    """Print the messages of an MCAP recording whose topic starts with one of ``topics``."""
    prefixes = [fully_qualified(topic) for topic in topics] or ["/"]
    printed = 0
    for recorded in read_mcap(path):
        if count is not None and printed >= count:
            return
        if any(recorded.topic.startswith(prefix) for prefix in prefixes):
            click.echo(describe_recorded(recorded))
            printed += 1


def check_topic(options: TopicOptions, context: BuildContext) -> None:
    """``edgedepth check``: the endpoint bound (or listened on) and released, as the run's first
    step: a port in use or an address that is not this machine's fails here, and so does a
    zenoh ``connect`` endpoint that nothing answers (points: metric depth and intrinsics)."""
    TopicSink(options, context).close()


@edgedepth.hookimpl
def register_sinks(register):
    register(
        "topic",
        TopicOptions,
        TopicSink,
        description="depth Image messages (32FC1 m / 16UC1 mm): ZeroMQ, or ROS 2 on rmw_zenoh",
        check=check_topic,
    )


@edgedepth.hookimpl
def register_commands(cli):
    cli.add_command(topic)
