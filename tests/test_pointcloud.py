"""Point clouds (PLY files, PointCloud2 in MCAP recordings and on topics) and the ROS 2 details
of recordings, judged by implementations that are not ours: ``rosbags`` reads the recordings
(its own MCAP reader, CDR decoder and QoS parser), ``plyfile`` the PLY files; the expected
points are computed here from what rosbags decoded (the depth image and the recorded
CameraInfo's K) with depth_image_proc's formula (image_pipeline, depth_image_proc/include/
depth_image_proc/conversions.hpp, ``convertDepth``); the field layout is common_interfaces'
``setPointCloud2FieldsByString(2, "xyz", "rgb")`` (sensor_msgs/include/sensor_msgs/impl/
point_cloud2_iterator.hpp, lines 195-234) and the rgb bytes its ``r``/``g``/``b`` offsets (lines
392-411: b at +0, g at +1, r at +2 little endian); the MCAP metadata is what rosbag2's writer
produces, written out below from its source (file and line at each string)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import yaml

from edgedepth.api.errors import ConfigError
from edgedepth.api.frame import DepthKind, Frame, Intrinsics
from edgedepth.api.stages import BuildContext, SourceInfo
from edgedepth.media.pointcloud import (
    PointCloud2Packer,
    check_points,
    ply_bytes,
)
from edgedepth.media.synthetic_scene import SyntheticScene
from edgedepth.topic.ros2 import POINT_CLOUD2, TYPE_HASHES, FrameToMessages
from tests.conftest import TESTS, run_edgedepth, synthetic_config

pytest.importorskip("mcap_ros2")  # edgedepth[ros2]
plyfile = pytest.importorskip("plyfile")  # the dev extra
rosbags_typesys = pytest.importorskip("rosbags.typesys")  # the dev extra
from rosbags.rosbag2 import Reader as RosbagsReader  # noqa: E402

JAZZY = rosbags_typesys.get_typestore(rosbags_typesys.Stores.ROS2_JAZZY)
RAMP = str(TESTS / "plugins" / "ramp.py")
#: 80 m at the top row down to 0.08 m, the top 3 rows NaN: beyond 65.535 m and invalid pixels.
RAMP_BACKEND = {"type": "ramp", "max_depth": 80.0, "nan_rows": 3}
WIDTH, HEIGHT, FRAMES = 64, 48, 6


def depth_image_proc_points(depth_msg, k: np.ndarray) -> np.ndarray:
    """depth_image_proc's convertDepth on a decoded Image: H×W×3, NaN where invalid (float:
    not finite; uint16: 0), millimetres scaled by 0.001."""
    if depth_msg.encoding == "16UC1":
        raw = depth_msg.data.view("<u2").reshape(depth_msg.height, depth_msg.width)
        z = np.where(raw == 0, np.nan, raw * 0.001)
    else:
        z = depth_msg.data.view("<f4").reshape(depth_msg.height, depth_msg.width).astype(float)
        z = np.where(np.isfinite(z), z, np.nan)
    v, u = np.mgrid[0 : depth_msg.height, 0 : depth_msg.width]
    return np.stack([(u - k[0, 2]) * z / k[0, 0], (v - k[1, 2]) * z / k[1, 1], z], axis=-1)


def recorded(path) -> dict[str, list]:
    """Every message of a recording by topic, decoded by rosbags, with the connection."""
    received: dict[str, list] = {}
    with RosbagsReader(path) as bag:
        for connection, log_time, raw in bag.messages():
            message = JAZZY.deserialize_cdr(raw, connection.msgtype)
            received.setdefault(connection.topic, []).append((message, log_time, connection))
    return received


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_recorded_point_clouds_are_the_back_projection_of_the_depth(
    tmp_path, write_config, encoding
):
    """The PointCloud2 of each frame, read back with rosbags, is the depth image back-projected
    with the recorded CameraInfo's K (≤ 1e-3 m), organized, NaN where the depth is invalid
    (NaN rows, and beyond 65.535 m in 16UC1), with the image's colours and header; the PLY files
    read with plyfile hold the same points; stamps are the wall clock of the run."""
    config = synthetic_config(
        tmp_path,
        plugins=[RAMP],
        source={"type": "synthetic", "frames": FRAMES, "width": WIDTH, "height": HEIGHT},
        backend=RAMP_BACKEND,
        sinks=[
            {"type": "mcap", "path": "run.mcap", "points": True, "depth_encoding": encoding},
            {"type": "ply", "dir": "clouds"},
        ],
    )
    started = time.time()
    result = run_edgedepth("run", "--config", str(write_config(config)))
    finished = time.time()
    assert result.returncode == 0, result.stderr
    received = recorded(tmp_path / "run.mcap")
    assert set(received) == {"/camera/image_raw", "/camera/camera_info", "/depth/image",
                             "/depth/camera_info", "/depth/points"}  # fmt: skip
    scene = SyntheticScene(seed=0, width=WIDTH, height=HEIGHT)
    for index in range(FRAMES):
        depth, depth_time, _ = received["/depth/image"][index]
        info = received["/depth/camera_info"][index][0]
        rgb = received["/camera/image_raw"][index][0]
        cloud, cloud_time, connection = received["/depth/points"][index]
        assert connection.msgtype == POINT_CLOUD2
        # The recorded K is the synthetic camera's, in the ROS convention (pixel centres at
        # integers: the scene casts rays through u + 0.5 with cx = W/2).
        k = info.k.reshape(3, 3)
        assert np.allclose(k, [[scene.K[0, 0], 0, WIDTH / 2 - 0.5],
                               [0, scene.K[1, 1], HEIGHT / 2 - 0.5], [0, 0, 1]])  # fmt: skip
        # Organized, depth_image_proc's xyzrgb layout, the depth image's header.
        assert (cloud.height, cloud.width, cloud.is_dense, cloud.is_bigendian) == (
            HEIGHT, WIDTH, False, False,
        )  # fmt: skip
        assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
            ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 16, 7, 1)
        ]  # fmt: skip
        assert (cloud.point_step, cloud.row_step) == (32, WIDTH * 32)
        assert cloud.header == depth.header and cloud_time == depth_time
        # Wall clock at the first frame's capture, later frames spaced by their media time (the
        # synthetic source's 30 fps: a run faster than real time stamps them ahead of it).
        stamp = depth.header.stamp.sec + depth.header.stamp.nanosec / 1e9
        assert started - 1 < stamp - index / 30 < finished
        points = cloud.data.view(np.uint8).reshape(HEIGHT, WIDTH, 32)
        xyz = points[..., :12].copy().view("<f4").reshape(HEIGHT, WIDTH, 3)
        expected = depth_image_proc_points(depth, k)
        invalid = np.isnan(expected[..., 2])
        assert invalid[:3].all()  # the NaN rows
        if encoding == "16UC1":  # beyond 65.535 m: no measurement, never a clamped 65.535 m
            assert invalid[3].all() and not invalid[-1].any()
        else:
            assert not invalid[3:].any()
        assert np.array_equal(np.isnan(xyz).all(axis=-1), invalid)
        assert np.isnan(xyz[invalid]).all()
        assert np.abs(xyz[~invalid] - expected[~invalid]).max() <= 1e-3
        bgr = points[..., 16:19]
        assert np.array_equal(bgr[..., ::-1], rgb.data.reshape(HEIGHT, WIDTH, 3))
        assert not points[..., 19].any() and not points[..., 12:16].any()  # zero padding

        # The PLY of the same frame: the valid pixels of the float depth (all but the NaN
        # rows: in 16UC1 also those beyond 65.535 m, which the cloud leaves out), in pixel order.
        ply = plyfile.PlyData.read(str(tmp_path / "clouds" / f"{index:06d}.ply"))
        assert ply.text is False and ply.byte_order == "<"
        vertex = ply["vertex"]
        assert [p.name for p in vertex.properties] == ["x", "y", "z", "red", "green", "blue"]
        assert [p.val_dtype for p in vertex.properties] == ["f4"] * 3 + ["u1"] * 3
        measured = np.zeros((HEIGHT, WIDTH), dtype=bool)
        measured[3:] = True
        assert len(vertex) == measured.sum()
        ply_xyz = np.stack([vertex[axis] for axis in "xyz"], axis=-1)
        in_cloud = ~invalid[measured]
        assert in_cloud.sum() == (~invalid).sum()
        assert np.abs(ply_xyz[in_cloud] - expected[~invalid]).max() <= 1e-3
        colours = np.stack([vertex[c] for c in ("red", "green", "blue")], axis=-1)
        assert np.array_equal(colours, rgb.data.reshape(HEIGHT, WIDTH, 3)[measured])


def test_points_and_ply_need_metric_depth_and_a_camera(tmp_path, write_config):
    """Relative depth has no points: one line naming the key, in check and run, nothing
    written; ``normalize`` makes metres relative, and that is seen too."""
    cases = [
        ({"type": "sleepy"}, [], {"type": "mcap", "path": "r.mcap", "points": True},
         "sinks[0]: points: point clouds need metric depth, and this pipeline's depth is "
         "relative-disparity"),
        ({"type": "sleepy"}, [], {"type": "ply", "dir": "clouds"},
         "sinks[0]: ply: point clouds need metric depth"),
        (RAMP_BACKEND, [{"type": "normalize"}], {"type": "topic", "points": True},
         "sinks[0]: points: point clouds need metric depth, and this pipeline's depth is "
         "relative-depth"),
    ]  # fmt: skip
    for backend, postprocessors, sink, message in cases:
        config = synthetic_config(
            tmp_path, plugins=[RAMP, *synthetic_config(tmp_path)["plugins"]], backend=backend,
            postprocess=postprocessors, sinks=[sink],
        )  # fmt: skip
        path = write_config(config)
        for command in ("check", "run"):
            result = run_edgedepth(command, "--config", str(path))
            assert result.returncode == 2, (command, result.stderr)
            assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
            assert "Traceback" not in result.stderr
        assert not (tmp_path / "r.mcap").exists() and not (tmp_path / "clouds").exists()

    no_camera = BuildContext(None, "file", tmp_path, SourceInfo(64, 48, 30.0, False))
    with pytest.raises(ConfigError, match=r"set intrinsics: .* or horizontal_fov"):
        check_points(no_camera, None, None)
    check_points(no_camera, None, 60.0)  # a field of view will do


def test_packing_layouts_and_a_camera_from_its_field_of_view():
    """A hand-made depth through the packers: NaN, ±inf, 0 and negative are no point; a
    field of view makes a centred camera; a depth of another size than the image gets the
    camera scaled (pixel edges scale, centres move by half a pixel)."""
    depth = np.array([[1.0, np.nan, np.inf], [0.0, -2.0, 4.0]], dtype=np.float32)
    camera = Intrinsics.from_horizontal_fov(90.0, 3, 2)
    assert (camera.fx, camera.cx, camera.cy) == pytest.approx((1.5, 1.0, 0.5))
    fields, step, data = PointCloud2Packer()(depth, camera)
    assert ([f.name for f in fields], step, len(data)) == (["x", "y", "z"], 16, 6 * 16)
    xyz = np.frombuffer(data, "<f4").reshape(2, 3, 4)[..., :3]
    assert np.isnan(xyz.reshape(6, 3)[1:5]).all()
    assert xyz[0, 0].tolist() == pytest.approx([-1 / 1.5, -0.5 / 1.5, 1.0])
    assert xyz[1, 2].tolist() == pytest.approx([4 / 1.5, 2 / 1.5, 4.0])
    rgb = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    ply = plyfile.PlyData.read(__import__("io").BytesIO(ply_bytes(depth, camera, rgb)))
    assert len(ply["vertex"]) == 2 and ply["vertex"]["red"].tolist() == [0, 15]
    assert Intrinsics(10, 10, 4.5, 2.5).resized((6, 10), (3, 5)) == Intrinsics(5, 5, 2.0, 1.0)


def test_a_stream_packer_reuses_its_buffer_without_leaking_frames():
    """The sinks pack every frame into one kept buffer: each frame's data is what a fresh
    packing gives (no point, colour or padding of an earlier frame), sizes and layouts may
    change between frames."""
    rng = np.random.default_rng(3)

    def frame(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        depth = rng.uniform(0.5, 9.0, (height, width)).astype(np.float32)
        depth[rng.random((height, width)) < 0.3] = np.nan
        return depth, rng.integers(0, 256, (height, width, 3), dtype=np.uint8)

    camera = Intrinsics(40.0, 40.0, 15.5, 11.5)
    packer = PointCloud2Packer()
    for height, width, coloured in [(24, 32, True), (24, 32, True), (24, 32, False),
                                    (12, 16, True), (24, 32, True)]:  # fmt: skip
        depth, rgb = frame(height, width)
        colours = rgb if coloured else None
        assert packer(depth, camera, colours) == PointCloud2Packer()(depth, camera, colours)


def test_points_of_a_frame_with_depth_of_another_size():
    """``restore_size: false``: the depth's CameraInfo and points use K scaled to its size."""
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    frame = Frame(0, 0.0, image, 0.0, depth=np.full((24, 32), 2.0, np.float32),
                  depth_kind=DepthKind.METRIC_METERS,
                  intrinsics=Intrinsics(50.0, 50.0, 31.5, 23.5))  # fmt: skip
    messages = FrameToMessages(points=True)(frame)
    info = {m.topic: m.fields for m in messages}["depth/camera_info"]
    assert (info["height"], info["width"]) == (24, 32)
    assert info["k"] == [25.0, 0.0, 15.5, 0.0, 25.0, 11.5, 0.0, 0.0, 1.0]
    cloud = {m.topic: m.fields for m in messages}["depth/points"]
    assert (cloud["height"], cloud["width"]) == (24, 32)
    xyz = np.frombuffer(cloud["data"], "<f4").reshape(24, 32, 4)
    assert xyz[0, 0, 0] == pytest.approx((0 - 15.5) * 2.0 / 25.0)


# --- what rosbag2 reads beside the messages ------------------------------------------------------

#: rosbag2_storage/src/rosbag2_storage/qos.cpp, convert<rclcpp::QoS>::encode (lines 151-165,
#: version 9: policies by rmw's names, rmw/src/qos_string_conversions.c), for rclcpp's default
#: profile (rmw/include/rmw/qos_profiles.h, rmw_qos_profile_default, lines 51-62: keep last 10,
#: reliable, volatile, RMW_DURATION_UNSPECIFIED = {0, 0}, liveliness system default), dumped
#: by serialize_rclcpp_qos_vector (lines 441-445: YAML::Dump of a sequence, no final newline).
QOS_LINES = [
    "history: keep_last",
    "depth: 10",
    "reliability: reliable",
    "durability: volatile",
    "deadline:",
    "  sec: 0",
    "  nsec: 0",
    "lifespan:",
    "  sec: 0",
    "  nsec: 0",
    "liveliness: system_default",
    "liveliness_lease_duration:",
    "  sec: 0",
    "  nsec: 0",
    "avoid_ros_namespace_conventions: false",
]
OFFERED_QOS = "- " + "\n  ".join(QOS_LINES)


def bag_yaml(file: str, start: int, duration: int, count: int, topics: list[tuple]) -> str:
    """rosbag2_storage/include/rosbag2_storage/yaml.hpp, convert<BagMetadata>::encode (lines
    257-275), TopicInformation (149-156), TopicMetadata (108-123, version 9: the QoS as a
    nested sequence), FileInformation (197-204), durations (221-225) and time points
    (238-242), as YAML::Dump emits them (mcap_storage.cpp, update_metadata, lines 964-968);
    rosbag2_cpp's SequentialWriter fills it (sequential_writer.cpp: init_metadata, lines 75-94,
    custom_data empty → ``~``; ROS_DISTRO unset → ""; write, 403-430; finalize_metadata,
    502-522)."""
    qos = "\n".join(f"        {'- ' if i == 0 else '  '}{line}" for i, line in enumerate(QOS_LINES))
    listed = "".join(
        f"  - topic_metadata:\n"
        f"      name: {name}\n"
        f"      type: {type_name}\n"
        f"      serialization_format: cdr\n"
        f"      offered_qos_profiles:\n{qos}\n"
        f"      type_description_hash: {TYPE_HASHES[type_name]}\n"
        f"    message_count: {messages}\n"
        for name, type_name, messages in topics
    )
    return (
        f"version: 9\n"
        f"storage_identifier: mcap\n"
        f"duration:\n  nanoseconds: {duration}\n"
        f"starting_time:\n  nanoseconds_since_epoch: {start}\n"
        f"message_count: {count}\n"
        f"topics_with_message_count:{'' if topics else ' []'}\n{listed}"
        f'compression_format: ""\n'
        f'compression_mode: ""\n'
        f"relative_file_paths:\n  - {file}\n"
        f"files:\n  - path: {file}\n"
        f"    starting_time:\n      nanoseconds_since_epoch: {start}\n"
        f"    duration:\n      nanoseconds: {duration}\n"
        f"    message_count: {count}\n"
        f"custom_data: ~\n"
        f'ros_distro: ""'
    )


def test_mcap_metadata_is_what_rosbag2_writes(tmp_path, write_config, monkeypatch):
    monkeypatch.delenv("ROS_DISTRO", raising=False)
    config = synthetic_config(
        tmp_path,
        plugins=[RAMP],
        source={"type": "synthetic", "frames": 4, "width": 32, "height": 24},
        backend=RAMP_BACKEND,
        sinks=[{"type": "mcap", "path": "bag.mcap", "rgb": "none", "points": True}],
    )
    result = run_edgedepth("run", "--config", str(write_config(config)), env={"ROS_DISTRO": ""})
    assert result.returncode == 0, result.stderr
    from mcap.reader import make_reader

    with open(tmp_path / "bag.mcap", "rb") as file:
        reader = make_reader(file)
        summary = reader.get_summary()
        records = [m for m in reader.iter_metadata()]
        times = sorted(m.log_time for _, _, m in reader.iter_messages())
    types = {channel.topic: summary.schemas[channel.schema_id].name
             for channel in summary.channels.values()}  # fmt: skip
    for channel in summary.channels.values():  # mcap_storage.cpp, create_topic, lines 935-938
        assert channel.metadata["offered_qos_profiles"] == OFFERED_QOS
        assert channel.metadata["topic_type_hash"] == TYPE_HASHES[types[channel.topic]]
    # SequentialWriter::open writes the record (line 168), close writes it again (187).
    assert [record.name for record in records] == ["rosbag2", "rosbag2"]
    assert [list(record.metadata) for record in records] == [["serialized_metadata"]] * 2
    opened, closed = (record.metadata["serialized_metadata"] for record in records)
    assert opened == bag_yaml("bag.mcap", 2**63 - 1, 0, 0, [])
    order = ["/depth/camera_info", "/depth/image", "/depth/points"]
    assert list(types) == order
    expected = bag_yaml("bag.mcap", times[0], times[-1] - times[0], len(times),
                        [(topic, types[topic], 4) for topic in order])  # fmt: skip
    assert closed == expected
    assert yaml.safe_load(closed)["topics_with_message_count"][2]["message_count"] == 4
    # rosbags' own QoS parser reads the channels' profiles.
    with RosbagsReader(tmp_path / "bag.mcap") as bag:
        for connection in bag.connections:
            (qos,) = connection.ext.offered_qos_profiles
            assert (qos.history.name, qos.depth, qos.reliability.name, qos.durability.name) == (
                "KEEP_LAST", 10, "RELIABLE", "VOLATILE",
            )  # fmt: skip


def test_echo_shows_point_clouds(tmp_path, write_config):
    config = synthetic_config(
        tmp_path,
        plugins=[RAMP],
        source={"type": "synthetic", "frames": 2, "width": 32, "height": 24},
        backend=RAMP_BACKEND,
        sinks=[{"type": "mcap", "path": "r.mcap", "points": True, "stamp": "media"}],
    )
    assert run_edgedepth("run", "--config", str(write_config(config))).returncode == 0
    result = run_edgedepth("topic", "echo", str(tmp_path / "r.mcap"), "--topic", "depth/points")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("/depth/points seq=1 stamp=0.000 32x24 PointCloud2 x y z rgb ")
    assert " 672/768 valid points x=" in first and " m" in first  # 3 NaN rows of 32


def test_ply_folder_follows_the_existing_policy(tmp_path, write_config):
    """A second run into the same folder is refused (one line naming it); ``clear`` replaces
    the old clouds; ``new-name`` writes beside them."""
    sink = {"type": "ply", "dir": "clouds", "name": "cloud_{index:03d}.ply"}
    base = {"plugins": [RAMP], "backend": RAMP_BACKEND,
            "source": {"type": "synthetic", "frames": 2, "width": 16, "height": 16}}  # fmt: skip
    first = write_config(synthetic_config(tmp_path, **base, sinks=[sink]))
    assert run_edgedepth("run", "--config", str(first)).returncode == 0
    assert sorted(p.name for p in (tmp_path / "clouds").iterdir()) == [
        "cloud_000.ply", "cloud_001.ply"
    ]  # fmt: skip
    again = run_edgedepth("run", "--config", str(first))
    assert again.returncode == 2
    assert "sinks[0].dir" in again.stderr and "existing: clear" in again.stderr
    (tmp_path / "clouds" / "cloud_009.ply").write_bytes(b"old")
    cleared = write_config(
        synthetic_config(tmp_path, **base, sinks=[{**sink, "existing": "clear"}])
    )
    assert run_edgedepth("run", "--config", str(cleared)).returncode == 0
    assert not (tmp_path / "clouds" / "cloud_009.ply").exists()
    beside = {**sink, "existing": "new-name"}
    assert (
        run_edgedepth(
            "run", "--config", str(write_config(synthetic_config(tmp_path, **base, sinks=[beside])))
        ).returncode
        == 0
    )
    assert (tmp_path / "clouds-2" / "cloud_001.ply").is_file()
    bad = write_config(synthetic_config(tmp_path, **base, sinks=[{**sink, "name": "cloud.ply"}]))
    result = run_edgedepth("check", "--config", str(bad))
    assert result.returncode == 2 and "has no {index}" in result.stderr
