"""The topic sink on zenoh, seen as a ROS 2 node on rmw_zenoh sees it: a real zenoh session on
127.0.0.1 subscribes on the exact key expression rmw_zenoh subscribers declare, rosbags decodes
the CDR payloads, the attachment is parsed by its documented byte layout, and the liveliness
tokens are those rmw_zenoh's graph reads. Golden values come from rmw_zenoh's design notes and
its own C++ code (compiled once to compute them), not from this project's code."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edgedepth.topic import open_zenoh
from edgedepth.topic.rmw_zenoh import (
    Attachment,
    decode_sample,
    entity_gid,
    parse_topic_key_expr,
    publisher_token,
    topic_key_expr,
)
from edgedepth.topic.ros2 import (
    CAMERA_INFO,
    IMAGE,
    POINT_CLOUD2,
    TYPE_HASHES,
    encode_cdr,
    to_millimetres,
    to_rep117_metres,
)
from tests.conftest import run_edgedepth, synthetic_config

zenoh = pytest.importorskip("zenoh")  # edgedepth[zenoh]
pytest.importorskip("mcap_ros2")  # edgedepth[ros2]
rosbags_typesys = pytest.importorskip("rosbags.typesys")  # the dev extra
JAZZY = rosbags_typesys.get_typestore(rosbags_typesys.Stores.ROS2_JAZZY)

METRIC = {"type": "sleepy", "kind": "metric-meters", "scale": 0.05}
INTRINSICS = {"fx": 50.0, "fy": 51.0, "cx": 32.0, "cy": 24.0}
#: rmw_zenoh's docs/design.md: the demo talker's publisher token ...
TALKER_TOKEN = (
    "@ros2_lv/0/aac3178e146ba6f1fc6e6a4085e77f21/0/10/MP/%/%/talker/%chatter/"
    "std_msgs::msg::dds_::String_/"
    "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18/::,7:,:,:,,"
)
#: ... and its GID as rmw_zenoh's simplified_xxhash3.cpp computes it (low64 then high64, LE).
TALKER_GID = bytes.fromhex("c128aa5567af01b7163eae5e2a8362d7")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parse_attachment(data: bytes) -> tuple[int, int, bytes]:
    """rmw_zenoh's attachment by its documented layout: int64 LE sequence number, int64 LE
    source timestamp, 1 byte GID length, the GID."""
    assert len(data) == 33, data.hex()
    sequence, timestamp, gid_length = struct.unpack_from("<qqB", data)
    assert gid_length == 16
    return sequence, timestamp, data[17:]


def test_wire_format_facts():
    assert entity_gid(TALKER_TOKEN) == TALKER_GID
    attachment = Attachment(7, 1_700_000_000_123_456_789, TALKER_GID)
    assert parse_attachment(attachment.encode()) == (7, 1_700_000_000_123_456_789, TALKER_GID)
    assert Attachment.decode(attachment.encode()) == attachment
    assert topic_key_expr(0, "/depth/image/", IMAGE) == (
        "0/depth/image/sensor_msgs::msg::dds_::Image_/"
        "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47"
    )
    key = parse_topic_key_expr(topic_key_expr(2, "robot1/depth/camera_info", CAMERA_INFO))
    assert (key.domain_id, key.topic, key.type_name) == (
        2,
        "/robot1/depth/camera_info",
        CAMERA_INFO,
    )
    # The talker's token shape, with our type: same fields in the same places.
    token = publisher_token(
        0, "aac3178e146ba6f1fc6e6a4085e77f21", 0, 10, "talker", "chatter", IMAGE
    )
    assert token.split("/")[:10] == TALKER_TOKEN.split("/")[:10]
    assert token.split("/")[-1] == "::,10:,:,:,,"  # reliable, volatile, keep last 10


def test_decode_sample_refuses_what_a_ros_subscriber_would():
    head = {"stamp": {"sec": 1, "nanosec": 5}, "frame_id": "c"}
    fields = {"header": head, "height": 1, "width": 2, "encoding": "16UC1", "is_bigendian": 0,
              "step": 4, "data": b"\1\0\2\0"}  # fmt: skip
    payload = encode_cdr(IMAGE, fields)
    key = topic_key_expr(0, "depth/image", IMAGE)
    attachment = Attachment(3, 0, bytes(16)).encode()
    image = decode_sample(key, payload, attachment)
    assert (image.seq, image.topic, image.depth.tolist()) == (3, "depth/image", [[1, 2]])
    with pytest.raises(ValueError, match="no attachment"):
        decode_sample(key, payload, None)
    with pytest.raises(ValueError, match="another definition"):
        decode_sample(key.replace("RIHS01_d3", "RIHS01_00"), payload, attachment)
    with pytest.raises(ValueError, match="not an rmw_zenoh attachment"):
        decode_sample(key, payload, b"\1\2\3")


class RosSideListener:
    """What an rmw_zenoh node's session does: subscribe on exact key expressions, and watch the
    graph's liveliness tokens."""

    def __init__(self, endpoint: str, keys: list[str], domain_id: int) -> None:
        self.samples: dict[str, list] = {key: [] for key in keys}
        self.tokens: list[tuple[str, str]] = []  # (kind, key expression)
        self.lock = threading.Lock()
        self.session = open_zenoh(connect=[endpoint])
        self.subscribers = [
            self.session.declare_subscriber(key, self._on_sample(key)) for key in keys
        ]
        self.graph = self.session.liveliness().declare_subscriber(
            f"@ros2_lv/{domain_id}/**", self._on_token, history=True
        )

    def _on_sample(self, key: str):
        def handle(sample) -> None:
            attachment = sample.attachment.to_bytes() if sample.attachment is not None else None
            with self.lock:
                self.samples[key].append((sample.payload.to_bytes(), attachment, time.time_ns()))

        return handle

    def _on_token(self, sample) -> None:
        with self.lock:
            kind = "PUT" if sample.kind == zenoh.SampleKind.PUT else "DELETE"
            self.tokens.append((kind, str(sample.key_expr)))

    def count(self, key: str) -> int:
        with self.lock:
            return len(self.samples[key])

    def close(self) -> None:
        self.graph.undeclare()
        for subscriber in self.subscribers:
            subscriber.undeclare()
        self.session.close()


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_ros2_subscriber_receives_every_frame(tmp_path, write_config, encoding):
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    frames, domain_id = 10, 7
    image_key = topic_key_expr(domain_id, "robot/depth/image", IMAGE)
    info_key = topic_key_expr(domain_id, "robot/depth/camera_info", CAMERA_INFO)
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": frames, "width": 64, "height": 48},
        backend=METRIC,
        sinks=[
            {"type": "topic", "transport": "zenoh", "endpoint": endpoint, "encoding": encoding,
             "topic": "robot/depth/image", "camera_info": INTRINSICS, "domain_id": domain_id,
             "frame_id": "cam", "wait_for_subscribers": 1, "stamp": "media"},
            {"type": "npy", "dir": "out"},
        ],
    )  # fmt: skip
    started = time.time_ns()
    run = subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "run", "--config", str(write_config(config))],
        stderr=subprocess.PIPE,
        text=True,
    )
    listener = RosSideListener(endpoint, [image_key, info_key], domain_id)
    try:
        deadline = time.monotonic() + 60
        while listener.count(image_key) < frames and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run.wait(60) == 0, run.stderr.read()
        time.sleep(0.5)  # the tokens' deletion reaches us
    finally:
        listener.close()

    images, infos = listener.samples[image_key], listener.samples[info_key]
    assert len(images) == len(infos) == frames
    puts = [key for kind, key in listener.tokens if kind == "PUT"]
    node = [key for key in puts if "/NN/" in key]
    publishers = {key.split("/")[9]: key for key in puts if "/MP/" in key}
    assert len(node) == 1 and node[0].endswith("/NN/%/%/edgedepth")
    assert node[0].startswith(f"@ros2_lv/{domain_id}/")
    assert set(publishers) == {"%robot%depth%image", "%robot%depth%camera_info"}
    image_token = publishers["%robot%depth%image"]
    zid, node_id = node[0].split("/")[2:4]
    assert image_token.split("/")[:4] == ["@ros2_lv", str(domain_id), zid, node_id]
    assert image_token.split("/")[5:] == [
        "MP", "%", "%", "edgedepth", "%robot%depth%image", "sensor_msgs::msg::dds_::Image_",
        TYPE_HASHES[IMAGE], "::,10:,:,:,,",
    ]  # fmt: skip
    # Undeclared when the run ends: the graph does not keep a dead node.
    assert {key for kind, key in listener.tokens if kind == "DELETE"} == set(puts)

    for index, (payload, attachment, received_at) in enumerate(images):
        sequence, timestamp, gid = parse_attachment(attachment)
        assert sequence == index + 1  # per publisher, from 1
        assert started <= timestamp <= received_at
        assert gid == entity_gid(image_token)
        message = JAZZY.deserialize_cdr(payload, IMAGE)  # rosbags' own CDR decoder
        assert message.header.frame_id == "cam"
        assert message.header.stamp.nanosec == round(index / 30 * 1e9)
        assert (message.height, message.width, message.encoding) == (48, 64, encoding)
        produced = np.load(tmp_path / "out" / f"{index:06d}.npy")
        if encoding == "32FC1":
            assert np.array_equal(
                message.data.view("<f4").reshape(48, 64), to_rep117_metres(produced), equal_nan=True
            )
        else:
            assert np.array_equal(
                message.data.view("<u2").reshape(48, 64), to_millimetres(produced)
            )
    info = JAZZY.deserialize_cdr(infos[0][0], CAMERA_INFO)
    assert info.k.tolist() == [50.0, 0.0, 32.0, 0.0, 51.0, 24.0, 0.0, 0.0, 1.0]
    assert parse_attachment(infos[0][1])[2] == entity_gid(publishers["%robot%depth%camera_info"])


def test_topic_echo_decodes_rmw_zenoh(tmp_path, write_config):
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": 3, "width": 32, "height": 24},
        backend={"type": "sleepy"},
        sinks=[{"type": "topic", "transport": "zenoh", "endpoint": endpoint,
                "wait_for_subscribers": 1, "stamp": "media"}],
    )  # fmt: skip
    echo = subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "topic", "echo", endpoint, "--transport", "zenoh",
         "--count", "6", "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "ROS_DOMAIN_ID": "0"},
    )  # fmt: skip
    time.sleep(1.0)  # echo connects to the run's endpoint, retrying until it listens
    run = run_edgedepth("run", "--config", str(write_config(config)), env={"ROS_DOMAIN_ID": "0"})
    assert run.returncode == 0, run.stderr
    out, err = echo.communicate(timeout=60)
    assert echo.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("depth/camera_info seq=1 stamp=0.000 32x24 CameraInfo")
    assert lines[1].startswith(
        "depth/relative_disparity seq=1 stamp=0.000 32x24 relative_disparity_32FC1 3072 B "
        "relative-disparity range="
    )
    assert [line.split(" ")[:2] for line in lines[2::2]] == [
        ["depth/camera_info", "seq=2"], ["depth/camera_info", "seq=3"]
    ]  # fmt: skip


def test_zenoh_topic_names_must_be_ros_names(tmp_path, write_config):
    sink = {"type": "topic", "transport": "zenoh", "topic": "depth/image-raw"}
    config = write_config(synthetic_config(tmp_path, sinks=[sink]))
    result = run_edgedepth("check", "--config", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "not a ROS 2 topic name" in result.stderr


def test_ros2_subscriber_deserialises_point_clouds(tmp_path, write_config):
    """``points: true``: a subscriber on the PointCloud2 key expression (as rmw_zenoh declares
    it) gets depth_image_proc's organized cloud of each depth image; rosbags decodes it."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    image_key = topic_key_expr(0, "depth/image", IMAGE)
    points_key = topic_key_expr(0, "depth/points", POINT_CLOUD2)
    assert points_key == (
        "0/depth/points/sensor_msgs::msg::dds_::PointCloud2_/"
        "RIHS01_9198cabf7da3796ae6fe19c4cb3bdd3525492988c70522628af5daa124bae2b5"
    )  # the hash rosbags computes for Jazzy's and Kilted's PointCloud2 (test_pointcloud.py)
    frames = 4
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": frames, "width": 32, "height": 24},
        backend=METRIC,
        sinks=[{"type": "topic", "transport": "zenoh", "endpoint": endpoint, "points": True,
                "points_rgb": True, "camera_info": INTRINSICS, "wait_for_subscribers": 1}],
    )  # fmt: skip
    started = time.time()
    run = subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "run", "--config", str(write_config(config))],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ROS_DOMAIN_ID": "0"},
    )
    listener = RosSideListener(endpoint, [image_key, points_key], 0)
    try:
        deadline = time.monotonic() + 60
        while listener.count(points_key) < frames and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run.wait(60) == 0, run.stderr.read()
    finally:
        listener.close()
    images, clouds = listener.samples[image_key], listener.samples[points_key]
    assert len(images) == len(clouds) == frames
    for (image_payload, _, _), (payload, attachment, _) in zip(images, clouds, strict=True):
        cloud = JAZZY.deserialize_cdr(payload, POINT_CLOUD2)  # rosbags' own CDR decoder
        depth = JAZZY.deserialize_cdr(image_payload, IMAGE)
        assert parse_attachment(attachment)[0] >= 1
        assert cloud.header == depth.header
        assert started - 1 < cloud.header.stamp.sec + cloud.header.stamp.nanosec / 1e9 < time.time()
        assert (cloud.height, cloud.width, cloud.point_step, cloud.is_dense) == (24, 32, 32, False)
        assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
        xyz = cloud.data.view(np.uint8).reshape(24, 32, 32)[..., :12].copy().view("<f4")
        z = depth.data.view("<f4").reshape(24, 32)
        v, u = np.mgrid[0:24, 0:32]
        expected = np.stack([(u - 32.0) * z / 50.0, (v - 24.0) * z / 51.0, z], axis=-1)
        assert np.allclose(xyz.reshape(24, 32, 3), expected, atol=1e-3, equal_nan=True)


def test_a_connect_nothing_answers_is_a_warning_then_an_error(tmp_path, write_config):
    """A router that is down: a warning at start, a one-line error at the end (exit 1), and
    ``check`` fails on it."""
    refused = f"tcp/127.0.0.1:{free_port()}"  # nothing listens there
    config = write_config(
        synthetic_config(
            tmp_path,
            source={"type": "synthetic", "frames": 2, "width": 32, "height": 24},
            sinks=[
                {
                    "type": "topic",
                    "transport": "zenoh",
                    "connect": [refused],
                    "endpoint": f"tcp/127.0.0.1:{free_port()}",
                }
            ],
        )
    )
    run = run_edgedepth("run", "--config", str(config))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"warning: topic: connect {refused}: not connected after 3 s" in run.stderr
    assert (
        f"connect {refused}: never connected: nothing there received the frames"
        in (run.stderr.strip().splitlines()[-1])
    )
    check = run_edgedepth("check", "--config", str(config))
    assert check.returncode == 1, check.stderr
    assert f"sinks[0]: connect {refused}: never connected" in check.stderr.strip().splitlines()[-1]


def test_a_connect_that_answers_is_quiet(tmp_path, write_config):
    """The same run connecting to a zenoh peer that listens (what a router is to it) ends well,
    with no warning."""
    router_endpoint = f"tcp/127.0.0.1:{free_port()}"
    router = open_zenoh([router_endpoint])
    try:
        config = synthetic_config(
            tmp_path,
            source={"type": "synthetic", "frames": 2, "width": 32, "height": 24},
            sinks=[{"type": "topic", "transport": "zenoh", "connect": [router_endpoint],
                    "endpoint": f"tcp/127.0.0.1:{free_port()}"}],
        )  # fmt: skip
        run = run_edgedepth("run", "--config", str(write_config(config)))
    finally:
        router.close()
    assert run.returncode == 0, run.stderr
    assert "connect" not in run.stderr
