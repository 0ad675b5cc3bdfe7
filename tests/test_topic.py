"""The `topic` sink: ROS-like messages over real sockets on 127.0.0.1 (ZeroMQ and Zenoh), every
frame in file mode, a slow subscriber that does not slow the pipeline, `topic echo`, errors."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import DepthKind
from edgedepth.plugins.topic_sink import describe
from edgedepth.topic import (
    CameraInfo,
    DepthImage,
    PointCloud,
    TopicSubscriber,
    decode,
    encode_header,
    encode_image,
    import_zenoh,
)
from tests.conftest import POSIX_SIGNALS, run_edgedepth, synthetic_config

METRIC = {"type": "sleepy", "kind": "metric-meters", "scale": 0.05}  # 0..12.75 m
INTRINSICS = {"fx": 50.0, "fy": 51.0, "cx": 32.0, "cy": 24.0}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_edgedepth(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edgedepth", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def collect(subscriber: TopicSubscriber, count: int, timeout: float = 60.0) -> list:
    messages: list = []
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        message = subscriber.receive(timeout=0.5)
        if message is not None:
            messages.append(message)
    return messages


def test_encode_decode_round_trip_and_rep118_millimetres():
    depth = np.array([[0.0012, 1.2344, 70.0], [np.nan, -1.0, 0.0]], dtype=np.float32)
    header, data = encode_image(depth, DepthKind.METRIC_METERS, 12.5, 7, "cam", "16UC1")
    assert header["header"] == {"stamp": {"sec": 12, "nanosec": 500000000}, "frame_id": "cam",
                                "seq": 7}  # fmt: skip
    assert (header["height"], header["width"], header["step"]) == (2, 3, 6)
    message = decode("depth/image", encode_header(header), data)
    assert isinstance(message, DepthImage) and message.stamp == 12.5
    # Rounded to the millimetre; 0 = no measurement (NaN, negative, and 70 m: beyond 65.535 m,
    # never clamped to a valid 65535).
    assert message.depth.tolist() == [[1, 1234, 0], [0, 0, 0]]
    assert message.meters[0, 1] == pytest.approx(1.234)
    with pytest.raises(EdgedepthError, match="16UC1"):
        encode_image(depth, DepthKind.RELATIVE_DISPARITY, 0.0, 0, encoding="16UC1")


CASES = {
    "metric-32FC1": (METRIC, "32FC1", "depth/image", DepthKind.METRIC_METERS),
    "metric-16UC1": (METRIC, "16UC1", "depth/image", DepthKind.METRIC_METERS),
    "relative": ({"type": "sleepy"}, "32FC1", "depth/relative", DepthKind.RELATIVE_DISPARITY),
}
#: The encoding each case is published with (relative depth names its kind).
SENT_ENCODINGS = {"metric-32FC1": "32FC1", "metric-16UC1": "16UC1",
                  "relative": "relative_disparity_32FC1"}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_subscriber_receives_every_frame(tmp_path, write_config, case):
    backend, encoding, topic, kind = CASES[case]
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    frames = 20
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": frames, "width": 64, "height": 48, "fps": 25},
        backend=backend,
        sinks=[
            # A queue as long as the run: every frame reaches a subscriber even on a busy machine.
            {"type": "topic", "endpoint": endpoint, "encoding": encoding, "camera_info": INTRINSICS,
             "wait_for_subscribers": 1, "high_water_mark": frames, "stamp": "media"},
            {"type": "npy", "dir": "out"},
        ],
    )  # fmt: skip
    run = start_edgedepth("run", "--config", str(write_config(config)))
    with TopicSubscriber(endpoint) as subscriber:  # every topic: nothing else may be published
        messages = collect(subscriber, 2 * frames)
        assert subscriber.receive(timeout=0.2) is None
    assert run.wait(60) == 0, run.stderr.read()
    assert {m.topic for m in messages} == {topic, f"{topic}/camera_info"}
    images = [m for m in messages if isinstance(m, DepthImage)]
    infos = [m for m in messages if isinstance(m, CameraInfo)]
    assert [m.seq for m in images] == list(range(frames))
    assert [m.seq for m in infos] == list(range(frames))
    assert np.allclose(infos[0].matrix, [[50, 0, 32], [0, 51, 24], [0, 0, 1]])
    assert (infos[0].height, infos[0].width) == (48, 64)
    for message in images:
        assert (message.height, message.width) == (48, 64)
        assert message.encoding == SENT_ENCODINGS[case]
        assert message.step == 64 * (4 if encoding == "32FC1" else 2)
        assert message.frame_id == "camera" and message.depth_kind is kind
        assert message.stamp == pytest.approx(message.seq / 25, abs=1e-6)
        produced = np.load(tmp_path / "out" / f"{message.seq:06d}.npy")
        if kind is DepthKind.METRIC_METERS:
            tolerance = 0.0 if encoding == "32FC1" else 0.0005 + 1e-6
            valid = produced > 0  # elsewhere: NaN (32FC1) or 0 (16UC1), no measurement
            assert np.abs(message.meters - produced)[valid].max() <= tolerance
            assert (np.isnan if encoding == "32FC1" else np.logical_not)(
                message.meters[~valid]
            ).all()
        else:
            assert np.array_equal(message.depth, produced)
            with pytest.raises(ValueError, match="not metres"):
                _ = message.meters


def test_epoch_stamps_on_zeromq(tmp_path, write_config):
    """``stamp: epoch`` stamps with the wall clock on every transport (media spacing kept)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    frames = 5
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": frames, "width": 64, "height": 48, "fps": 25},
        sinks=[{"type": "topic", "endpoint": endpoint, "stamp": "epoch",
                "wait_for_subscribers": 1, "high_water_mark": frames}],
    )  # fmt: skip
    started = time.time()
    run = start_edgedepth("run", "--config", str(write_config(config)))
    with TopicSubscriber(endpoint) as subscriber:
        messages = collect(subscriber, frames)
    assert run.wait(60) == 0, run.stderr.read()
    stamps = [m.stamp for m in messages]
    assert len(stamps) == frames and started - 1 < stamps[0] < time.time()
    assert np.allclose(np.diff(stamps), 1 / 25, atol=1e-5)


def test_slow_subscriber_does_not_slow_the_pipeline(tmp_path, write_config):
    """A subscriber that takes 0.2 s per message: the pipeline runs as fast as without it."""
    frames = 60

    def run_pipeline(with_slow_subscriber: bool) -> tuple[float, dict, int]:
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        config = synthetic_config(
            tmp_path,
            source={"type": "synthetic", "frames": frames, "width": 64, "height": 48},
            backend={**METRIC, "delay_ms": 10},
            sinks=[{"type": "topic", "endpoint": endpoint,
                    "wait_for_subscribers": 1 if with_slow_subscriber else 0}],
        )  # fmt: skip
        path = write_config(config, f"slow-{with_slow_subscriber}.yaml")
        received: list[int] = []
        stop = threading.Event()

        def slow_subscriber() -> None:
            with TopicSubscriber(endpoint, queue_size=1) as subscriber:
                while not stop.is_set():
                    message = subscriber.receive(timeout=0.1)
                    if message is not None:
                        received.append(message.seq)
                        time.sleep(0.2)

        thread = threading.Thread(target=slow_subscriber)
        if with_slow_subscriber:
            thread.start()
        started = time.perf_counter()
        result = run_edgedepth("run", "--config", str(path), "--json")
        seconds = time.perf_counter() - started
        stop.set()
        if with_slow_subscriber:
            thread.join()
        assert result.returncode == 0, result.stderr
        return seconds, json.loads(result.stdout), len(received)

    alone_seconds, alone, _ = run_pipeline(False)
    slowed_seconds, slowed, received = run_pipeline(True)
    for label, seconds, stats in (("no subscriber", alone_seconds, alone),
                                  ("slow subscriber", slowed_seconds, slowed)):  # fmt: skip
        sink = stats["stages"]["sink:topic"]
        print(
            f"\n{label}: {frames} frames, {seconds:.2f} s wall (process), pipeline "
            f"{stats['fps']:.1f} fps (steady {stats['steady_fps']:.1f}), "
            f"topic sink p50 {sink['p50_ms']:.2f} ms p95 {sink['p95_ms']:.2f} ms"
        )
    print(f"the slow subscriber received {received} of {frames} messages")
    assert slowed["frames_out"] == frames
    assert 0 < received < frames
    # Waiting for the subscriber would cost 0.2 s per frame in the sink: 5 fps at best, a
    # fifth or less of the run without it. Measured against that run, not an absolute rate, so
    # a loaded machine slows both alike.
    assert slowed["stages"]["sink:topic"]["p95_ms"] < 100
    assert slowed["steady_fps"] > alone["steady_fps"] / 2


def test_topic_echo_prints_headers_then_exits(tmp_path, write_config):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    echo = start_edgedepth("topic", "echo", endpoint, "--count", "3", "--timeout", "60")
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": 3, "width": 32, "height": 24},
        backend=METRIC,
        sinks=[{"type": "topic", "endpoint": endpoint, "wait_for_subscribers": 1,
                "high_water_mark": 3, "stamp": "media"}],
    )  # fmt: skip
    assert run_edgedepth("run", "--config", str(write_config(config))).returncode == 0
    out, err = echo.communicate(timeout=60)
    print(out)
    assert echo.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    for seq, line in enumerate(lines):
        assert line.startswith(
            f"depth/image seq={seq} stamp={seq / 30:.3f} 32x24 32FC1 3072 B metric-meters range="
        )


@POSIX_SIGNALS
def test_topic_echo_skips_foreign_messages_and_ctrl_c_exits_quietly():
    with zmq.Context.instance().socket(zmq.XPUB) as publisher:
        port = publisher.bind_to_random_port("tcp://127.0.0.1")
        echo = start_edgedepth("topic", "echo", f"tcp://127.0.0.1:{port}")
        try:
            assert publisher.poll(30_000), "echo never subscribed"
            publisher.recv()  # its subscription: echo is receiving
            image = {"type": "Image", "header": {"stamp": {"sec": 1, "nanosec": 0},
                     "frame_id": "c", "seq": 0}, "height": 2, "width": 2, "encoding": "32FC1",
                     "step": 8, "depth_kind": "metric-meters"}  # fmt: skip
            malformed = [
                [b"depth/image", b"not json", b""],
                [b"depth/image", b"[1, 2]", b""],
                [b"depth/image", encode_header({**image, "step": 4}), b"\0" * 8],
                [b"depth/image", encode_header({**image, "height": -2}), b""],
                [
                    b"depth/image/camera_info",
                    encode_header({**image, "type": "CameraInfo", "k": [1, 2]}),
                    b"",
                ],
                [b"depth/image", b"{}"],
            ]
            for parts in malformed:
                publisher.send_multipart(parts)
            time.sleep(0.5)
        finally:
            echo.send_signal(signal.SIGINT)
            out, err = echo.communicate(timeout=30)
    assert echo.returncode == 0
    assert out == ""
    warnings = err.splitlines()
    assert len(warnings) == len(malformed) and "Traceback" not in err
    assert all(line.startswith("warning: depth/image") for line in warnings), err
    assert "not a depth topic message" in warnings[0]


def test_topic_echo_timeout_is_a_one_line_error():
    result = run_edgedepth("topic", "echo", f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.3")
    assert result.returncode == 1
    assert result.stderr.startswith("error: endpoint tcp://127.0.0.1:")
    assert len(result.stderr.splitlines()) == 1


def test_zenoh_transport_round_trip(tmp_path, write_config):
    """Zenoh speaks rmw_zenoh's format (tests/test_ros2.py checks it against rosbags); the
    subscriber decodes it back to the same DepthImage/CameraInfo as ZeroMQ's."""
    pytest.importorskip("zenoh")  # edgedepth[zenoh]
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    frames = 8
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": frames, "width": 32, "height": 24},
        backend=METRIC,
        sinks=[
            {"type": "topic", "transport": "zenoh", "endpoint": endpoint, "encoding": "16UC1",
             "camera_info": INTRINSICS, "wait_for_subscribers": 1, "stamp": "media"},
            {"type": "npy", "dir": "out"},
        ],
    )  # fmt: skip
    run = start_edgedepth("run", "--config", str(write_config(config)))
    # The run listens on the endpoint; the subscriber connects (retrying until it is up).
    with TopicSubscriber(endpoint, ("depth",), "zenoh") as subscriber:
        messages = collect(subscriber, 2 * frames, timeout=30)
    assert run.wait(60) == 0, run.stderr.read()
    images = [m for m in messages if isinstance(m, DepthImage)]
    infos = [m for m in messages if isinstance(m, CameraInfo)]
    # seq: the publisher's sequence number, from 1 as rmw_zenoh counts.
    assert [m.seq for m in images] == list(range(1, frames + 1))
    assert [m.topic for m in infos] == ["depth/camera_info"] * frames
    assert infos[0].matrix[1, 1] == 51.0
    for message in images:
        assert (message.encoding, message.step, message.height) == ("16UC1", 64, 24)
        assert message.stamp == pytest.approx((message.seq - 1) / 30, abs=1e-6)
        produced = np.load(tmp_path / "out" / f"{message.seq - 1:06d}.npy")
        assert np.abs(message.meters - produced).max() <= 0.0005 + 1e-6


def test_missing_zenoh_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "zenoh", None)  # as if not installed
    with pytest.raises(EdgedepthError, match=r"pip install 'edgedepth\[zenoh\]'"):
        import_zenoh()


@pytest.mark.parametrize("transport", ["zmq", "zenoh"])
def test_port_in_use_is_a_one_line_error(tmp_path, write_config, transport):
    if transport == "zenoh":
        pytest.importorskip("zenoh")  # edgedepth[zenoh]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        sink = {"type": "topic", "transport": transport, "endpoint": endpoint}
        config = synthetic_config(tmp_path, sinks=[sink])
        result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    print(line)
    assert f"endpoint {endpoint}" in line and "already in use" in line.lower()


def test_point_clouds_on_zeromq(tmp_path, write_config):
    """``points: true`` on ZeroMQ: the subscriber gets the cloud of each depth image (the
    back-projection with the camera_info intrinsics, NaN where the depth is invalid), and
    ``topic echo`` says its valid points and bounds."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    frames = 3
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": frames, "width": 32, "height": 24},
        backend=METRIC,
        sinks=[{"type": "topic", "endpoint": endpoint, "points": True, "camera_info": INTRINSICS,
                "wait_for_subscribers": 1, "high_water_mark": frames}],
    )  # fmt: skip
    run = start_edgedepth("run", "--config", str(write_config(config)))
    with TopicSubscriber(endpoint) as subscriber:
        messages = collect(subscriber, 3 * frames)
    assert run.wait(60) == 0, run.stderr.read()
    images = [m for m in messages if isinstance(m, DepthImage)]
    clouds = [m for m in messages if isinstance(m, PointCloud)]
    assert [m.seq for m in clouds] == [m.seq for m in images] == list(range(frames))
    for image, cloud in zip(images, clouds, strict=True):
        assert (cloud.topic, cloud.stamp, cloud.height, cloud.width) == (
            "depth/points", image.stamp, 24, 32,
        )  # fmt: skip
        z = image.meters
        v, u = np.mgrid[0:24, 0:32]
        expected = np.stack([(u - 32.0) * z / 50.0, (v - 24.0) * z / 51.0, z], axis=-1)
        assert np.allclose(cloud.xyz, expected, atol=1e-6, equal_nan=True)
        assert cloud.rgb is None and set(cloud.fields) == {"x", "y", "z"}
    line = describe(clouds[0])
    assert line.startswith("depth/points seq=0 ") and " 32x24 PointCloud2 x y z " in line
    valid = int(np.isfinite(images[0].meters).sum())
    assert f" {valid}/768 valid points x=" in line
