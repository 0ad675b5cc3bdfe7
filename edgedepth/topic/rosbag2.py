"""What rosbag2 writes into an MCAP file besides the messages, so ``ros2 bag info`` and
``ros2 bag play`` read edgedepth's recordings as they read their own (ROS 2 Jazzy, Kilted,
Rolling: rosbag2 metadata version 9):

- each channel's metadata: ``offered_qos_profiles`` (the publisher's QoS as a YAML list, what
  ``ros2 bag play`` republishes with) and ``topic_type_hash`` (RIHS01), as
  ``MCAPStorage::create_topic`` (rosbag2_storage_mcap/src/mcap_storage.cpp) writes them;
- a metadata record named ``rosbag2`` whose ``serialized_metadata`` is the bag's
  ``BagMetadata`` as YAML (``MCAPStorage::update_metadata``), written when the bag is opened and
  again when it is closed, as ``SequentialWriter::open`` / ``close`` do (a reader takes the last).

The YAML is yaml-cpp's block style (``YAML::Dump``), field for field as
rosbag2_storage/include/rosbag2_storage/yaml.hpp and rosbag2_storage/src/rosbag2_storage/qos.cpp
encode them. The QoS offered is rclcpp's default (``rmw_qos_profile_default``: reliable,
volatile, keep last 10 — what edgedepth's rmw_zenoh publishers advertise too).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

#: rosbag2's BagMetadata version (bag_metadata.hpp, Jazzy to Rolling).
METADATA_VERSION = 9
#: The MCAP metadata record rosbag2 reads (``mcap_reader_->metadataIndexes()``) and its key.
METADATA_RECORD = "rosbag2"
METADATA_KEY = "serialized_metadata"
#: ``std::chrono::nanoseconds::max()``: a bag's starting time before its first message.
NO_TIME = 2**63 - 1


@dataclass(frozen=True)
class QosProfile:
    """An ``rmw_qos_profile_t`` by rmw's names for its policies (rmw/qos_string_conversions.c);
    durations as (sec, nsec), (0, 0) being ``RMW_DURATION_UNSPECIFIED`` (the rmw's default)."""

    history: str = "keep_last"
    depth: int = 10
    reliability: str = "reliable"
    durability: str = "volatile"
    deadline: tuple[int, int] = (0, 0)
    lifespan: tuple[int, int] = (0, 0)
    liveliness: str = "system_default"
    liveliness_lease_duration: tuple[int, int] = (0, 0)
    avoid_ros_namespace_conventions: bool = False

    def yaml_lines(self) -> list[str]:
        """``convert<rclcpp::QoS>::encode`` (version 9) as yaml-cpp emits the map."""
        lines = [f"history: {self.history}", f"depth: {self.depth}"]
        lines += [f"reliability: {self.reliability}", f"durability: {self.durability}"]
        for name, (sec, nsec) in (("deadline", self.deadline), ("lifespan", self.lifespan)):
            lines += [f"{name}:", f"  sec: {sec}", f"  nsec: {nsec}"]
        lines += [f"liveliness: {self.liveliness}", "liveliness_lease_duration:"]
        lines += [f"  sec: {self.liveliness_lease_duration[0]}"]
        lines += [f"  nsec: {self.liveliness_lease_duration[1]}"]
        lines += [f"avoid_ros_namespace_conventions: {_bool(self.avoid_ros_namespace_conventions)}"]
        return lines


#: rclcpp's default publisher QoS (rmw/qos_profiles.h ``rmw_qos_profile_default``).
DEFAULT_QOS = QosProfile()


def offered_qos_profiles(profiles: Sequence[QosProfile] = (DEFAULT_QOS,)) -> str:
    """A channel's ``offered_qos_profiles``: ``serialize_rclcpp_qos_vector`` (version 9)."""
    return "\n".join(_sequence([profile.yaml_lines() for profile in profiles]))


@dataclass
class TopicRecord:
    """A topic of the bag, as ``rosbag2_storage::TopicInformation`` holds it."""

    name: str
    type: str
    type_description_hash: str
    message_count: int = 0
    serialization_format: str = "cdr"
    offered_qos_profiles: tuple[QosProfile, ...] = (DEFAULT_QOS,)


@dataclass
class BagMetadata:
    """What rosbag2's SequentialWriter keeps of a one-file bag and writes as the ``rosbag2``
    record (nanoseconds throughout; ``starting_time`` :data:`NO_TIME` before a message)."""

    file_name: str
    topics: list[TopicRecord]
    starting_time: int = NO_TIME
    duration: int = 0
    message_count: int = 0
    #: Whether the counts of the topics are in (``finalize_metadata``, at close): the record
    #: written at open lists no topics.
    finalized: bool = False
    storage_identifier: str = "mcap"
    #: ``ROS_DISTRO`` of the environment, as rosbag2 reads it (empty when unset).
    ros_distro: str = ""

    def add(self, time_ns: int) -> None:
        """Count a message stamped ``time_ns`` (``SequentialWriter::write``)."""
        self.starting_time = min(self.starting_time, time_ns)
        self.duration = max(self.duration, time_ns - self.starting_time)
        self.message_count += 1

    def yaml(self) -> str:
        """``YAML::Dump`` of ``convert<BagMetadata>::encode`` (no newline at the end)."""
        topics = self.topics if self.finalized else []
        lines = [f"version: {METADATA_VERSION}", f"storage_identifier: {self.storage_identifier}"]
        lines += ["duration:", f"  nanoseconds: {self.duration}"]
        lines += ["starting_time:", f"  nanoseconds_since_epoch: {self.starting_time}"]
        lines += [f"message_count: {self.message_count if self.finalized else 0}"]
        lines += ["topics_with_message_count:" + (" []" if not topics else "")]
        lines += _indent(_sequence([_topic_lines(topic) for topic in topics]))
        lines += ['compression_format: ""', 'compression_mode: ""']
        lines += ["relative_file_paths:", *_indent(_sequence([[_scalar(self.file_name)]]))]
        lines += ["files:"]
        lines += _indent(
            _sequence(
                [
                    [
                        f"path: {_scalar(self.file_name)}",
                        "starting_time:",
                        f"  nanoseconds_since_epoch: {self.starting_time}",
                        "duration:",
                        f"  nanoseconds: {self.duration}",
                        f"message_count: {self.message_count}",
                    ]
                ]
            )
        )
        lines += ["custom_data: ~", f"ros_distro: {_scalar(self.ros_distro)}"]
        return "\n".join(lines)


def ros_distro() -> str:
    """``ROS_DISTRO`` as rosbag2 stores it (``rcpputils::get_env_var``: empty when unset)."""
    return os.environ.get("ROS_DISTRO", "")


def _topic_lines(topic: TopicRecord) -> list[str]:
    lines = ["topic_metadata:"]
    lines += _indent(
        [
            f"name: {_scalar(topic.name)}",
            f"type: {_scalar(topic.type)}",
            f"serialization_format: {_scalar(topic.serialization_format)}",
            "offered_qos_profiles:",
            *_indent(_sequence([p.yaml_lines() for p in topic.offered_qos_profiles])),
            f"type_description_hash: {_scalar(topic.type_description_hash)}",
        ]
    )
    return [*lines, f"message_count: {topic.message_count}"]


def _sequence(items: list[list[str]]) -> list[str]:
    """A yaml-cpp block sequence of maps (``- `` then the map's lines indented by 2)."""
    lines: list[str] = []
    for item in items:
        lines += [f"- {item[0]}", *(f"  {line}" for line in item[1:])]
    return lines


def _indent(lines: list[str]) -> list[str]:
    return [f"  {line}" for line in lines]


def _bool(value: bool) -> str:
    return "true" if value else "false"


#: Scalars yaml-cpp writes without quotes: no indicator first, no ": " or " #" inside, no
#: surrounding blanks, and not a word YAML reads as null or a boolean.
_PLAIN = re.compile(r"[A-Za-z0-9_/.][A-Za-z0-9_/.:+=@-]*( [A-Za-z0-9_/.:+=@-]+)*")
_RESERVED = {"~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"}


def _scalar(text: str) -> str:
    """A string as yaml-cpp emits it: plain when it can be, else double-quoted."""
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED and not text.endswith(":"):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
