"""ROS 2 recordings in MCAP: the files ``ros2 bag``, Foxglove and RViz open, written so a killed
process keeps what it recorded; and a reader for users without ROS.

A recording has the ``ros2`` profile: each type's schema is its ROS 2 message definition
(encoding ``ros2msg``, see :mod:`edgedepth.topic.ros2`), each message is CDR (``cdr``); each
channel's metadata carries ``offered_qos_profiles`` and ``topic_type_hash`` and the file a
``rosbag2`` metadata record, as rosbag2 writes them (:mod:`edgedepth.topic.rosbag2`), so
``ros2 bag info`` shows the QoS and ``ros2 bag play`` republishes with it. A depth channel's
metadata also says ``depth_kind``. Log and publish times are the messages' header stamps.

Crash safety: messages are grouped in chunks of at most ``chunk_size`` bytes (plus the message
that overflows it); a finished chunk, with its message indexes, is handed to the operating
system at once. A process killed by SIGKILL (or a power cut after the OS wrote its cache) loses
only the open chunk; the file lacks its summary and footer, and :func:`read_mcap` (like
``mcap recover``) reads every finished chunk.

    for recorded in read_mcap("run.mcap"):
        print(recorded.topic, recorded.log_time, recorded.ros_msg.header.stamp)
        if recorded.type_name == "sensor_msgs/msg/PointCloud2":
            print(recorded.message.summary())  # valid points, bounds; .xyz: H×W×3 metres
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from edgedepth.api.errors import EdgedepthError, write_error
from edgedepth.api.frame import DepthKind
from edgedepth.topic.messages import Message, as_topic_message
from edgedepth.topic.ros2 import TYPE_HASHES, FrameMessage, encode_cdr, fully_qualified, schema_text
from edgedepth.topic.rosbag2 import (
    METADATA_KEY,
    METADATA_RECORD,
    BagMetadata,
    TopicRecord,
    offered_qos_profiles,
    ros_distro,
)

Compression = Literal["zstd", "lz4", "none"]
#: The first and last 8 bytes of every MCAP file.
MCAP_MAGIC = b"\x89MCAP0\r\n"
DEFAULT_CHUNK_SIZE = 1024 * 1024
_WRITE_BUFFER = 1024 * 1024


def import_mcap() -> None:
    """Check that ``mcap`` (with the ROS 2 codec) imports, else a one-line error saying how to
    install it."""
    try:
        import mcap.writer  # noqa: F401
        import mcap_ros2  # noqa: F401  (the CDR codec of edgedepth.topic.ros2)
    except ImportError:
        raise EdgedepthError(
            "MCAP recordings need mcap and mcap-ros2-support: pip install 'edgedepth[ros2]'"
        ) from None


class _FlushingFile:
    """A file the MCAP writer writes through: every write reaches the OS at once. The writer
    writes only when a chunk is finished (and at start and finish), so this flushes exactly at
    chunk boundaries."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file

    def write(self, data: bytes) -> int:
        written = self.file.write(data)
        self.file.flush()
        return written

    def tell(self) -> int:
        return self.file.tell()

    def flush(self) -> None:
        self.file.flush()


class McapRecorder:
    """Writes :class:`~edgedepth.topic.ros2.FrameMessage` s to a ROS 2 MCAP file.

    ``channel_metadata`` adds entries to a topic's channel metadata (e.g. the depth kind)."""

    def __init__(
        self,
        path: Path,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        compression: Compression = "zstd",
        library: str = "edgedepth",
    ) -> None:
        import_mcap()
        from mcap.writer import CompressionType, Writer

        self.path = path
        try:
            # Buffered (a chunk's records leave in one write), flushed at each chunk's end.
            self._file = open(path, "wb", buffering=_WRITE_BUFFER)  # noqa: SIM115  (see close())
        except OSError as exc:
            raise EdgedepthError(f"{path}: cannot create recording: {exc.strerror}") from None
        self._writer = Writer(
            _FlushingFile(self._file),
            chunk_size=chunk_size,
            compression={
                "zstd": CompressionType.ZSTD,
                "lz4": CompressionType.LZ4,
                "none": CompressionType.NONE,
            }[compression],
        )
        self._writer.start(profile="ros2", library=library)
        #: What rosbag2 keeps of the bag: its record is written now and at close.
        self.bag = BagMetadata(path.name, [], ros_distro=ros_distro())
        self._write_bag_record()
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._topics: dict[str, TopicRecord] = {}
        self.messages = 0
        self._closed = False

    def _write_bag_record(self) -> None:
        self._writer.add_metadata(METADATA_RECORD, {METADATA_KEY: self.bag.yaml()})

    def _channel(self, message: FrameMessage, metadata: dict[str, str]) -> int:
        if message.topic not in self._channels:
            if message.type_name not in self._schemas:
                self._schemas[message.type_name] = self._writer.register_schema(
                    message.type_name, "ros2msg", schema_text(message.type_name).encode()
                )
            topic = TopicRecord(
                fully_qualified(message.topic), message.type_name, TYPE_HASHES[message.type_name]
            )
            self._channels[message.topic] = self._writer.register_channel(
                topic=topic.name,
                message_encoding=topic.serialization_format,
                schema_id=self._schemas[message.type_name],
                metadata={
                    "offered_qos_profiles": offered_qos_profiles(topic.offered_qos_profiles),
                    "topic_type_hash": topic.type_description_hash,
                    **metadata,
                },
            )
            self._topics[message.topic] = topic
            self.bag.topics.append(topic)
        return self._channels[message.topic]

    def write(
        self, message: FrameMessage, time_ns: int, channel_metadata: dict[str, str] | None = None
    ) -> None:
        """Record one message at ``time_ns`` (its header stamp)."""
        channel = self._channel(message, channel_metadata or {})
        topic = self._topics[message.topic]
        sequence = topic.message_count + 1
        try:
            self._writer.add_message(
                channel_id=channel,
                log_time=time_ns,
                publish_time=time_ns,
                sequence=sequence,
                data=encode_cdr(message.type_name, message.fields),
            )
        except OSError as exc:
            raise write_error(self.path, exc) from None
        topic.message_count = sequence
        self.bag.add(time_ns)
        self.messages += 1

    def close(self) -> None:
        """Write the open chunk, the summary and the footer (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.bag.finalized = True
            self._write_bag_record()
            self._writer.finish()
        finally:
            self._file.close()


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedMessage:
    """One message read back from an MCAP file."""

    topic: str
    #: ``sensor_msgs/msg/Image`` etc.
    type_name: str
    #: Nanoseconds (the header stamp for edgedepth's recordings).
    log_time: int
    sequence: int
    channel_metadata: dict[str, str]
    #: The message as recorded: CDR bytes.
    data: bytes
    #: The decoded message: attributes named as its fields.
    ros_msg: Any

    @property
    def message(self) -> Message | None:
        """A depth image, camera info or point cloud as :mod:`edgedepth.topic`'s types
        (``.meters``, ``.matrix``, ``.xyz`` and ``.summary()``: valid points and bounds), the
        depth's kind from the channel's metadata; None for any other type."""
        kind = self.channel_metadata.get("depth_kind")
        return as_topic_message(
            self.topic.lstrip("/"),
            self.type_name,
            self.sequence,
            self.ros_msg,
            DepthKind(kind) if kind in {k.value for k in DepthKind} else None,
        )


def read_mcap(path: str | Path) -> Iterator[RecordedMessage]:
    """Every message of a ROS 2 MCAP file in file order, decoded; a recording cut short by a
    kill yields every message of its finished chunks."""
    import_mcap()
    from mcap.exceptions import InvalidMagic, McapError
    from mcap.reader import NonSeekingReader
    from mcap_ros2.decoder import DecoderFactory

    path = Path(path)
    try:
        file = open(path, "rb")  # noqa: SIM115  (closed below)
    except OSError as exc:
        raise EdgedepthError(f"{path}: cannot open: {exc.strerror}") from None
    with file:
        complete = _ends_with_magic(file)
        # Reading the records in order needs no summary: it works on cut-off files too.
        reader = NonSeekingReader(file, decoder_factories=[DecoderFactory()])
        try:
            for schema, channel, message, decoded in reader.iter_decoded_messages(
                log_time_order=False
            ):
                yield RecordedMessage(
                    topic=channel.topic,
                    type_name=schema.name if schema else "",
                    log_time=message.log_time,
                    sequence=message.sequence,
                    channel_metadata=dict(channel.metadata),
                    data=message.data,
                    ros_msg=decoded,
                )
        except (McapError, struct.error, ValueError, EOFError) as exc:
            # A file without its footer was cut off (a killed recording): its last, partly
            # written chunk is unreadable by design. Anywhere else an error is an error.
            if complete or isinstance(exc, InvalidMagic):
                raise EdgedepthError(f"{path}: not a readable MCAP file: {exc}") from None


def _ends_with_magic(file: BinaryIO) -> bool:
    """Whether an MCAP file was finished: it ends with the magic bytes it starts with."""
    head = file.read(len(MCAP_MAGIC))
    file.seek(0, io.SEEK_END)
    if file.tell() < 2 * len(MCAP_MAGIC):
        file.seek(0)
        return False
    file.seek(-len(MCAP_MAGIC), io.SEEK_END)
    tail = file.read(len(MCAP_MAGIC))
    file.seek(0)
    return head == tail == MCAP_MAGIC
