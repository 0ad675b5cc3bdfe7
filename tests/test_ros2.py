"""ROS 2 messages and MCAP recordings, read back with implementations that are not ours:
``rosbags`` (its own CDR codec, MCAP reader and type hashing) and the ``mcap`` reader's ROS 2
decoder. Real files from real runs; a SIGKILL mid-recording."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import DepthKind, Frame, Intrinsics
from edgedepth.media.synthetic_scene import SyntheticScene
from edgedepth.topic.mcap_recording import import_mcap, read_mcap
from edgedepth.topic.ros2 import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    IMAGE,
    POINT_CLOUD2,
    TYPE_HASHES,
    FrameToMessages,
    encode_cdr,
    import_cdr_codec,
    schema_text,
    to_millimetres,
    to_rep117_metres,
)
from tests.conftest import POSIX_SIGNALS, killed_run, run_edgedepth, synthetic_config

pytest.importorskip("mcap_ros2")  # edgedepth[ros2]
rosbags_typesys = pytest.importorskip("rosbags.typesys")  # the dev extra
from rosbags.rosbag2 import Reader as RosbagsReader  # noqa: E402

METRIC = {"type": "sleepy", "kind": "metric-meters", "scale": 0.05}  # 0..12.75 m
JAZZY = rosbags_typesys.get_typestore(rosbags_typesys.Stores.ROS2_JAZZY)


def rosbags_store(type_name: str):
    """A rosbags type store holding only the types of our schema text for ``type_name``."""
    store = rosbags_typesys.get_typestore(rosbags_typesys.Stores.EMPTY)
    store.register(rosbags_typesys.get_types_from_msg(schema_text(type_name), type_name))
    return store


def frame(index: int = 3, height: int = 6, width: int = 8, kind=DepthKind.METRIC_METERS) -> Frame:
    rng = np.random.default_rng(index)
    depth = rng.uniform(0.2, 60.0, (height, width)).astype(np.float32)
    depth[0, :3] = [np.nan, -1.0, 0.0]  # no measurement
    return Frame(
        index=index,
        timestamp=index / 30,
        image=rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        captured_at=time.perf_counter(),
        depth=depth,
        depth_kind=kind,
        intrinsics=Intrinsics(50.0, 51.0, 4.0, 3.0),
    )


# --- messages -----------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", [IMAGE, COMPRESSED_IMAGE, CAMERA_INFO, POINT_CLOUD2])
def test_type_hashes_are_those_of_the_definitions(type_name):
    """rosbags hashes our schema text (REP-2011) to our constant, and to the hash of its own
    copy of the Jazzy and Kilted definitions."""
    assert rosbags_store(type_name).hash_rihs01(type_name) == TYPE_HASHES[type_name]
    kilted = rosbags_typesys.get_typestore(rosbags_typesys.Stores.ROS2_KILTED)
    assert JAZZY.hash_rihs01(type_name) == kilted.hash_rihs01(type_name) == TYPE_HASHES[type_name]


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_cdr_is_byte_identical_to_rosbags(encoding):
    """Each message of a frame: rosbags decodes our CDR to the exact values, and its own encoder
    produces the same bytes."""
    source = frame()
    messages = FrameToMessages(rgb="raw", depth_encoding=encoding, clock="media")(source)
    assert [(m.topic, m.type_name) for m in messages] == [
        ("camera/camera_info", CAMERA_INFO), ("camera/image_raw", IMAGE),
        ("depth/camera_info", CAMERA_INFO), ("depth/image", IMAGE),
    ]  # fmt: skip
    for message in messages:
        data = encode_cdr(message.type_name, message.fields)
        assert data[:4] == b"\x00\x01\x00\x00"  # XCDR1 little endian encapsulation
        decoded = JAZZY.deserialize_cdr(data, message.type_name)
        assert JAZZY.serialize_cdr(decoded, message.type_name) == data
        assert (decoded.header.stamp.sec, decoded.header.stamp.nanosec) == (0, 100_000_000)
        assert decoded.header.frame_id == "camera"
    depth = JAZZY.deserialize_cdr(encode_cdr(IMAGE, messages[3].fields), IMAGE)
    assert (depth.height, depth.width, depth.encoding, depth.is_bigendian) == (6, 8, encoding, 0)
    if encoding == "32FC1":
        pixels = depth.data.view("<f4").reshape(6, 8)
        assert np.isnan(pixels[0, :3]).all()  # REP-117: NaN = no measurement (not -1, not 0)
        assert np.array_equal(pixels[1:], source.depth[1:])  # metres, bit-exact
        assert depth.step == 32
    else:
        pixels = depth.data.view("<u2").reshape(6, 8)
        assert pixels[0, :3].tolist() == [0, 0, 0]  # REP-118: 0 = no measurement
        assert np.array_equal(pixels, to_millimetres(source.depth))
        assert np.abs(pixels[1:] / 1000 - source.depth[1:]).max() <= 0.0005 + 1e-6
        assert depth.step == 16
    rgb = JAZZY.deserialize_cdr(encode_cdr(IMAGE, messages[1].fields), IMAGE)
    assert (rgb.encoding, rgb.step) == ("rgb8", 24)
    assert np.array_equal(rgb.data.reshape(6, 8, 3), source.image)
    info = JAZZY.deserialize_cdr(encode_cdr(CAMERA_INFO, messages[0].fields), CAMERA_INFO)
    assert info.k.tolist() == [50.0, 0.0, 4.0, 0.0, 51.0, 3.0, 0.0, 0.0, 1.0]
    assert info.p.tolist() == [50.0, 0.0, 4.0, 0.0, 0.0, 51.0, 3.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert (info.height, info.width, info.distortion_model) == (6, 8, "plumb_bob")


def test_relative_depth_is_named_by_its_encoding_whatever_the_topic():
    """Relative depth: float32 pixels under an encoding that names its kind, on a topic named
    for its kind (or any other); ``relative_encoding: 32FC1`` keeps the plain encoding."""
    for kind, topic, encoding in (
        (DepthKind.RELATIVE_DISPARITY, "depth/relative_disparity", "relative_disparity_32FC1"),
        (DepthKind.RELATIVE_DEPTH, "depth/relative_depth", "relative_depth_32FC1"),
    ):
        (message,) = FrameToMessages(camera_info=False, depth_encoding="16UC1")(frame(kind=kind))
        assert (message.topic, message.fields["encoding"]) == (topic, encoding)
        assert message.fields["step"] == 8 * 4  # float32, whatever depth_encoding says
    custom = FrameToMessages(camera_info=False, relative_topic="mono/inverse_depth")
    (message,) = custom(frame(kind=DepthKind.RELATIVE_DEPTH))
    assert (message.topic, message.fields["encoding"]) == (
        "mono/inverse_depth",
        "relative_depth_32FC1",
    )
    plain = FrameToMessages(camera_info=False, relative_encoding="32FC1")
    assert plain(frame(kind=DepthKind.RELATIVE_DEPTH))[0].fields["encoding"] == "32FC1"


# --- MCAP recordings ----------------------------------------------------------------------------

CASES = {
    # name: (backend, sink options, depth topic, rgb topic)
    "metric-32FC1-raw": (
        METRIC,
        {"depth_encoding": "32FC1", "stamp": "media"},
        "/depth/image",
        "/camera/image_raw",
    ),
    "metric-16UC1-jpeg": (
        METRIC,
        {
            "depth_encoding": "16UC1",
            "rgb": "jpeg",
            "intrinsics": {"fx": 40, "fy": 41, "cx": 31.5, "cy": 23.5},
            "stamp": "media",
        },
        "/depth/image",
        "/camera/image_raw/compressed",
    ),
    "relative": (
        {"type": "sleepy"},
        {"depth_encoding": "16UC1", "stamp": "media"},
        "/depth/relative_disparity",
        "/camera/image_raw",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_mcap_recording_reads_back_with_rosbags(tmp_path, write_config, case):
    backend, options, depth_topic, rgb_topic = CASES[case]
    frames, fps = 12, 25
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": frames, "width": 64, "height": 48, "fps": fps},
        backend=backend,
        sinks=[{"type": "mcap", "path": "run.mcap", "frame_id": "cam0", **options},
               {"type": "npy", "dir": "out"}],
    )  # fmt: skip
    result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode == 0, result.stderr
    scene = SyntheticScene(seed=0, width=64, height=48, fps=fps, motion="orbit")
    given = options.get("intrinsics")
    k = scene.intrinsics.matrix if given is None else np.array(
        [[given["fx"], 0, given["cx"]], [0, given["fy"], given["cy"]], [0, 0, 1]]
    )  # fmt: skip

    received: dict[str, list] = {}
    with RosbagsReader(tmp_path / "run.mcap") as bag:  # rosbags: its own MCAP reader and CDR
        types = {c.topic: c.msgtype for c in bag.connections}
        for connection, log_time, raw in bag.messages():
            message = JAZZY.deserialize_cdr(raw, connection.msgtype)
            stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
            assert log_time == stamp  # recorded at the capture (media) time
            assert message.header.frame_id == "cam0"
            received.setdefault(connection.topic, []).append(message)
    assert types == {
        rgb_topic: COMPRESSED_IMAGE if rgb_topic.endswith("compressed") else IMAGE,
        "/camera/camera_info": CAMERA_INFO,
        depth_topic: IMAGE,
        "/depth/camera_info": CAMERA_INFO,
    }
    assert {topic: len(messages) for topic, messages in received.items()} == dict.fromkeys(
        types, frames
    )
    for index, message in enumerate(received[depth_topic]):
        assert message.header.stamp.nanosec == round(index / fps * 1e9)
        produced = np.load(tmp_path / "out" / f"{index:06d}.npy")
        if depth_topic == "/depth/image" and options["depth_encoding"] == "16UC1":
            assert message.encoding == "16UC1"
            assert np.array_equal(
                message.data.view("<u2").reshape(48, 64), to_millimetres(produced)
            )
        elif depth_topic == "/depth/image":
            assert message.encoding == "32FC1"
            assert np.array_equal(
                message.data.view("<f4").reshape(48, 64), to_rep117_metres(produced), equal_nan=True
            )
        else:  # relative depth: float32 whatever depth_encoding says, its kind in the encoding
            assert message.encoding == "relative_disparity_32FC1"
            assert np.array_equal(message.data.view("<f4").reshape(48, 64), produced)
    for info in received["/depth/camera_info"] + received["/camera/camera_info"]:
        assert np.allclose(info.k.reshape(3, 3), k, rtol=0, atol=1e-12)
    rgb = received[rgb_topic][5]
    if rgb_topic.endswith("compressed"):
        from PIL import Image

        assert rgb.format == "jpeg"
        decoded = np.asarray(Image.open(__import__("io").BytesIO(rgb.data.tobytes())))
        assert np.abs(decoded.astype(int) - scene.render(5)[0]).mean() < 6
    else:
        assert np.array_equal(rgb.data.reshape(48, 64, 3), scene.render(5)[0])

    # The mcap reader's ROS 2 decoder opens it too; the file is what ROS 2 tools expect.
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(tmp_path / "run.mcap", "rb") as file:
        reader = make_reader(file, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        assert summary.statistics.message_count == 4 * frames
        assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
        assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
        for channel in summary.channels.values():
            schema = summary.schemas[channel.schema_id]
            assert channel.metadata["topic_type_hash"] == TYPE_HASHES[schema.name]
        decoded = list(reader.iter_decoded_messages(topics=[depth_topic]))
    assert [m.decoded_message.height for m in decoded] == [48] * frames
    kind = "metric-meters" if depth_topic == "/depth/image" else "relative-disparity"
    assert decoded[0].channel.metadata["depth_kind"] == kind


def test_frames_that_change_size(tmp_path):
    """Each message carries its own size."""
    from edgedepth.plugins.mcap_sink import McapSink, McapSinkOptions

    sink = McapSink(McapSinkOptions(path=tmp_path / "sizes.mcap"), context=None)
    for index, (height, width) in enumerate([(6, 8), (10, 4), (6, 8)]):
        sink.write(frame(index, height, width))
    sink.close()
    with RosbagsReader(tmp_path / "sizes.mcap") as bag:
        sizes = [
            (c.topic, m.height, m.width)
            for c, _, raw in bag.messages()
            for m in [JAZZY.deserialize_cdr(raw, c.msgtype)]
            if c.topic == "/depth/image"
        ]
    assert sizes == [("/depth/image", 6, 8), ("/depth/image", 10, 4), ("/depth/image", 6, 8)]


def test_each_finished_chunk_is_on_disk_at_once(tmp_path):
    """While recording, another reader of the file sees every message but the open chunk's."""
    from edgedepth.topic.mcap_recording import McapRecorder

    recorder = McapRecorder(tmp_path / "live.mcap", chunk_size=4096, compression="none")
    to_messages = FrameToMessages(camera_info=False)
    for index in range(60):
        (message,) = to_messages(frame(index, 16, 16))  # ~1.1 kB: 4 messages finish a chunk
        recorder.write(message, index)
        on_disk = sum(1 for _ in read_mcap(tmp_path / "live.mcap"))
        assert on_disk >= index + 1 - 3, (index + 1, on_disk)
    recorder.close()
    assert sum(1 for _ in read_mcap(tmp_path / "live.mcap")) == 60


@POSIX_SIGNALS
def test_recording_survives_sigkill(tmp_path, write_config):
    """SIGKILL a real run mid-recording: every finished chunk stays readable, exactly."""
    config = write_config(
        synthetic_config(
            tmp_path,
            source={"type": "synthetic", "frames": 600, "width": 96, "height": 64},
            backend={**METRIC, "delay_ms": 30},
            # ~43 kB of messages per frame (rgb8, 32FC1, 2 CameraInfo): a chunk every 2 frames.
            sinks=[
                {"type": "mcap", "path": "killed.mcap", "chunk_size": 65536},
                {"type": "npy", "dir": "out"},
            ],
        )
    )
    produced = killed_run(config, tmp_path / "out", 40)
    assert produced >= 40
    with pytest.raises(Exception, match="magic"):  # not finished: no summary, no footer
        RosbagsReader(tmp_path / "killed.mcap").open()
    depth = [m for m in read_mcap(tmp_path / "killed.mcap") if m.topic == "/depth/image"]
    print(json.dumps({"frames_produced": produced, "depth_messages_readable": len(depth),
                      "bytes": (tmp_path / "killed.mcap").stat().st_size}))  # fmt: skip
    # Lost: the open chunk (2 frames) and what the npy sink wrote while mcap had not yet.
    assert len(depth) >= produced - 4, (len(depth), produced)
    for index, recorded in enumerate(depth):
        message = JAZZY.deserialize_cdr(recorded.data, IMAGE)  # rosbags, on the raw bytes
        produced_depth = np.load(tmp_path / "out" / f"{index:06d}.npy")
        assert np.array_equal(
            message.data.view("<f4").reshape(64, 96),
            to_rep117_metres(produced_depth),
            equal_nan=True,
        )


def test_topic_echo_prints_a_recording(tmp_path, write_config):
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": 3, "width": 32, "height": 24},
        backend=METRIC,
        sinks=[
            {
                "type": "mcap",
                "path": "r.mcap",
                "rgb": "jpeg",
                "camera_info": False,
                "stamp": "media",
            }
        ],
    )
    assert run_edgedepth("run", "--config", str(write_config(config))).returncode == 0
    result = run_edgedepth("topic", "echo", str(tmp_path / "r.mcap"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    assert lines[0].startswith(
        "/camera/image_raw/compressed seq=1 stamp=0.000 CompressedImage jpeg"
    )
    assert lines[1].startswith(
        "/depth/image seq=1 stamp=0.000 32x24 32FC1 3072 B metric-meters range="
    )
    only_depth = run_edgedepth("topic", "echo", str(tmp_path / "r.mcap"), "--topic", "depth",
                               "--count", "2")  # fmt: skip
    assert [line.split(" seq=")[0] for line in only_depth.stdout.splitlines()] == [
        "/depth/image"
    ] * 2


def test_option_errors_and_missing_extra(tmp_path, write_config, monkeypatch):
    config = synthetic_config(
        tmp_path, sinks=[{"type": "mcap", "path": "r.mcap", "depth_topic": "depth/2d-image"}]
    )
    result = run_edgedepth("check", "--config", str(write_config(config)))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "sinks[0].depth_topic" in result.stderr and "not a ROS 2 topic name" in result.stderr
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"not an mcap file, not at all")
    result = run_edgedepth("topic", "echo", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {bad}: not a readable MCAP file")
    monkeypatch.setitem(sys.modules, "mcap", None)  # as if not installed
    with pytest.raises(EdgedepthError, match=r"pip install 'edgedepth\[ros2\]'"):
        import_mcap()
    monkeypatch.setitem(sys.modules, "mcap_ros2", None)
    with pytest.raises(EdgedepthError, match=r"mcap-ros2-support: pip install 'edgedepth\[ros2\]'"):
        import_cdr_codec()


def test_a_recording_needs_a_writable_path(tmp_path, write_config):
    (tmp_path / "taken").mkdir()
    config = synthetic_config(tmp_path, sinks=[{"type": "mcap", "path": "taken"}])
    result = run_edgedepth("check", "--config", str(write_config(config)))
    assert result.returncode == 2
    assert "sinks[0].path:" in result.stderr and "taken is a folder" in result.stderr
