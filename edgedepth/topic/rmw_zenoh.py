"""rmw_zenoh's wire format: publish on zenoh so ROS 2 nodes running ``rmw_zenoh_cpp`` receive
the messages with no bridge, and see the publisher in ``ros2 topic list`` / ``ros2 node list``.

Targets ROS 2 **Jazzy** (``rmw_zenoh_cpp`` 0.2.4 or newer), **Kilted** and **Rolling**
(0.6.0 or newer): the releases whose attachment is the binary layout below (rmw_zenoh PRs #601
and #605, April 2025). Humble's rmw_zenoh (0.1.x) has no type hashes; older Jazzy builds used a
keyed attachment and drop these samples.

A message on topic ``/depth/image`` of ``ROS_DOMAIN_ID`` 0 is a zenoh ``put`` on the key
expression ``<domain>/<topic without its outer slashes>/<DDS type name>/<RIHS01 type hash>``::

    0/depth/image/sensor_msgs::msg::dds_::Image_/RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47

The payload is the CDR message (:func:`edgedepth.topic.ros2.encode_cdr`). The attachment (33 bytes,
zenoh-ext serialisation, as rmw_zenoh's ``AttachmentData``): int64 LE sequence number (per
publisher, from 1), int64 LE source timestamp (ns since the UNIX epoch), 1 byte GID length (16),
the publisher's 16-byte GID. rmw_zenoh subscribers drop samples without this attachment.

Graph discovery uses liveliness tokens under ``@ros2_lv``: one for the node
(``@ros2_lv/<domain>/<zid>/<node id>/<node id>/NN/<enclave>/<namespace>/<node>``) and one per
publisher (``.../<node id>/<entity id>/MP/%/%/<node>/<topic>/<type>/<hash>/<qos>``), names
with ``/`` written as ``%``. The GID is XXH3-128 of the publisher's token (low 64 bits, then high,
little endian), as rmw_zenoh computes it. The advertised QoS is rclcpp's default (reliable,
volatile, keep last 10); rmw_zenoh has no incompatible QoS.

rmw_zenoh nodes find each other through a router (``ros2 run rmw_zenoh_cpp rmw_zenohd``,
``tcp/localhost:7447``): connect to it (``connect: [tcp/localhost:7447]``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from edgedepth.api.errors import EdgedepthError
from edgedepth.topic.messages import as_topic_message
from edgedepth.topic.ros2 import (
    TYPE_HASHES,
    dds_type_name,
    decode_cdr,
    fully_qualified,
    ros_type_name,
)

ADMIN_SPACE = "@ros2_lv"
#: rmw_zenoh's compact QoS of reliable, volatile, keep last 10 (its defaults are depth 42).
DEFAULT_QOS = "::,10:,:,:,,"
GID_SIZE = 16


def domain_id_from_env() -> int:
    """``ROS_DOMAIN_ID`` as ROS 2 reads it (0 when unset)."""
    value = os.environ.get("ROS_DOMAIN_ID", "").strip()
    try:
        return int(value) if value else 0
    except ValueError:
        raise EdgedepthError(f"ROS_DOMAIN_ID={value!r}: not a number") from None


def mangle(name: str) -> str:
    """A name inside a liveliness token: ``/`` written as ``%``."""
    return name.replace("/", "%")


def topic_key_expr(domain_id: int, topic: str, type_name: str) -> str:
    """The key expression messages of ``type_name`` on ``topic`` are put on."""
    return f"{domain_id}/{topic.strip('/')}/{dds_type_name(type_name)}/{TYPE_HASHES[type_name]}"


@dataclass(frozen=True)
class TopicKey:
    """A topic key expression taken apart."""

    domain_id: int
    #: Fully qualified (``/depth/image``).
    topic: str
    #: ``sensor_msgs/msg/Image``
    type_name: str
    type_hash: str


def parse_topic_key_expr(key_expr: str) -> TopicKey:
    """The parts of a topic key expression; ValueError if it is not one."""
    parts = key_expr.split("/")
    if len(parts) < 4 or not parts[0].isdigit() or "::dds_::" not in parts[-2]:
        raise ValueError(f"{key_expr!r} is not an rmw_zenoh topic key expression")
    return TopicKey(int(parts[0]), "/" + "/".join(parts[1:-2]), ros_type_name(parts[-2]), parts[-1])


def node_token(domain_id: int, zid: str, node_id: int, node: str, namespace: str = "/") -> str:
    """The liveliness token of a node (default enclave)."""
    return f"{ADMIN_SPACE}/{domain_id}/{zid}/{node_id}/{node_id}/NN/%/{mangle(namespace)}/{node}"


def publisher_token(
    domain_id: int,
    zid: str,
    node_id: int,
    entity_id: int,
    node: str,
    topic: str,
    type_name: str,
    namespace: str = "/",
    qos: str = DEFAULT_QOS,
) -> str:
    """The liveliness token of a publisher of that node."""
    return (
        f"{ADMIN_SPACE}/{domain_id}/{zid}/{node_id}/{entity_id}/MP/%/{mangle(namespace)}/{node}/"
        f"{mangle(fully_qualified(topic))}/{dds_type_name(type_name)}/{TYPE_HASHES[type_name]}/"
        f"{qos}"
    )


def entity_gid(token: str) -> bytes:
    """The GID rmw_zenoh gives the entity of a liveliness token (XXH3-128, low half first)."""
    try:
        import xxhash
    except ImportError:
        raise EdgedepthError(
            "transport zenoh needs xxhash: pip install 'edgedepth[zenoh]'"
        ) from None
    return xxhash.xxh3_128(token.encode()).intdigest().to_bytes(GID_SIZE, "little")


@dataclass(frozen=True)
class Attachment:
    """What rmw_zenoh attaches to each message."""

    sequence_number: int
    #: Nanoseconds since the UNIX epoch, when the message was published.
    source_timestamp: int
    gid: bytes

    def encode(self) -> bytes:
        """The attachment bytes, serialised with zenoh-ext as rmw_zenoh does."""
        from zenoh.ext import Int64, z_serialize

        fields = (Int64(self.sequence_number), Int64(self.source_timestamp), self.gid)
        return z_serialize(fields).to_bytes()

    @classmethod
    def decode(cls, data: bytes) -> Attachment:
        """An attachment from its bytes; ValueError if they are not one."""
        from zenoh import ZBytes
        from zenoh.ext import Int64, ZDeserializeError, z_deserialize

        try:
            sequence, timestamp, gid = z_deserialize(tuple[Int64, Int64, bytes], ZBytes(data))
        except (ZDeserializeError, ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"not an rmw_zenoh attachment: {exc}") from None
        if len(gid) != GID_SIZE:
            raise ValueError(f"not an rmw_zenoh attachment: GID of {len(gid)} bytes")
        return cls(int(sequence), int(timestamp), bytes(gid))


class RmwZenohPublisher:
    """A zenoh publisher on a topic's key expression, announced by its liveliness token."""

    def __init__(self, session: Any, key_expr: str, token: str) -> None:
        import zenoh

        self.key_expr = key_expr
        self.token = token
        self.gid = entity_gid(token)
        self.sequence_number = 0
        self._zenoh = zenoh
        self._publisher = session.declare_publisher(
            key_expr,
            # Drop rather than wait when a link is congested: never block the pipeline.
            congestion_control=zenoh.CongestionControl.DROP,
        )
        self._token = session.liveliness().declare_token(token)

    @property
    def matching(self) -> bool:
        """Whether some subscriber matches the key expression."""
        return bool(self._publisher.matching_status.matching)

    def put(self, payload: bytes) -> None:
        """Publish one CDR message with its attachment."""
        self.sequence_number += 1
        attachment = Attachment(self.sequence_number, time.time_ns(), self.gid)
        self._publisher.put(payload, attachment=attachment.encode())

    def undeclare(self) -> None:
        self._token.undeclare()
        self._publisher.undeclare()


class RmwZenohNode:
    """A ROS 2 node as rmw_zenoh's graph sees it, publishing on an open zenoh session."""

    NODE_ID = 0

    def __init__(
        self, session: Any, name: str = "edgedepth", namespace: str = "/", domain_id: int = 0
    ) -> None:
        self.session = session
        self.name = name
        self.namespace = namespace
        self.domain_id = domain_id
        self.zid = str(session.info.zid())
        self.token = node_token(domain_id, self.zid, self.NODE_ID, name, namespace)
        self._token = session.liveliness().declare_token(self.token)
        self.publishers: dict[tuple[str, str], RmwZenohPublisher] = {}

    def publisher(self, topic: str, type_name: str) -> RmwZenohPublisher:
        """The node's publisher of ``type_name`` on ``topic`` (declared on first use)."""
        if (topic, type_name) not in self.publishers:
            entity_id = self.NODE_ID + 1 + len(self.publishers)
            token = publisher_token(
                self.domain_id, self.zid, self.NODE_ID, entity_id, self.name, topic, type_name,
                self.namespace,
            )  # fmt: skip
            key_expr = topic_key_expr(self.domain_id, topic, type_name)
            self.publishers[topic, type_name] = RmwZenohPublisher(self.session, key_expr, token)
        return self.publishers[topic, type_name]

    def close(self) -> None:
        """Undeclare the publishers and the node (the session stays open)."""
        for publisher in self.publishers.values():
            publisher.undeclare()
        self.publishers = {}
        self._token.undeclare()


def decode_sample(key_expr: str, payload: bytes, attachment: bytes | None) -> Any:
    """A depth image or camera info received on an rmw_zenoh key expression as
    :mod:`edgedepth.topic`'s ``DepthImage``/``CameraInfo`` (``seq``: the publisher's sequence
    number); ValueError for anything else."""
    key = parse_topic_key_expr(key_expr)
    if key.type_name not in TYPE_HASHES:
        raise ValueError(f"{key.topic}: type {key.type_name} is not one edgedepth decodes")
    if key.type_hash != TYPE_HASHES[key.type_name]:
        raise ValueError(f"{key.topic}: {key.type_name} with another definition ({key.type_hash})")
    if attachment is None:
        raise ValueError(f"{key.topic}: no attachment (rmw_zenoh attaches one to every message)")
    sequence = Attachment.decode(attachment).sequence_number
    try:
        message = decode_cdr(key.type_name, payload)
    except Exception as exc:  # a payload is untrusted: whatever the decoder trips on
        raise ValueError(
            f"{key.topic}: not a CDR {key.type_name} ({len(payload)} bytes): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    converted = as_topic_message(key.topic.lstrip("/"), key.type_name, sequence, message)
    if converted is None:
        raise ValueError(f"{key.topic}: {key.type_name} {message.encoding} is not a depth image")
    return converted
