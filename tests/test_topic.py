"""The `topic` sink: ROS-like messages over real sockets on 127.0.0.1 (ZeroMQ and Zenoh),
every frame in file mode, slow subscribers that do not slow the pipeline, `topic echo`."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edgedepth.frame import DepthKind
from edgedepth.topic import CameraInfo, DepthImage, TopicSubscriber
from tests.conftest import run_edgedepth, synthetic_config

pytest.importorskip("zmq")

METRIC = {"type": "sleepy", "kind": "metric-meters", "scale": 0.05}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_run(config_path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "run", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def collect(subscriber: TopicSubscriber, count: int, timeout: float = 60.0) -> list:
    messages, deadline = [], time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        message = subscriber.receive(timeout=1.0)
        if message is not None:
            messages.append(message)
    return messages


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_subscriber_receives_every_metric_frame(tmp_path, write_config, encoding):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    frames = 20
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": frames, "width": 64, "height": 48, "fps": 25},
        backend=METRIC,
        sinks=[
            # A queue for the whole run: every frame reaches it even when the machine is busy.
            {"type": "topic", "endpoint": endpoint, "encoding": encoding, "wait_for_subscribers": 1,
             "high_water_mark": 100, "camera_info": {"fx": 50, "fy": 50, "cx": 32, "cy": 24}},
            {"type": "npy", "dir": "out"},
        ],
    )  # fmt: skip
    run = start_run(write_config(config))
    with TopicSubscriber(endpoint, ("depth/image",)) as subscriber:
        messages = collect(subscriber, 2 * frames)
    assert run.wait(60) == 0, run.stderr.read()
    images = [m for m in messages if isinstance(m, DepthImage)]
    infos = [m for m in messages if isinstance(m, CameraInfo)]
    assert [m.seq for m in images] == list(range(frames))
    assert [m.seq for m in infos] == list(range(frames))
    assert np.allclose(infos[0].matrix, [[50, 0, 32], [0, 50, 24], [0, 0, 1]])
    for message in images:
        assert (message.height, message.width, message.encoding) == (48, 64, encoding)
        assert message.step == 64 * (4 if encoding == "32FC1" else 2)
        assert message.frame_id == "camera" and message.depth_kind is DepthKind.METRIC_METERS
        assert message.stamp == pytest.approx(message.seq / 25, abs=1e-6)
        produced = np.load(tmp_path / "out" / f"{message.seq:06d}.npy")
        tolerance = 1e-7 if encoding == "32FC1" else 0.0005 + 1e-6
        assert np.abs(message.meters - produced).max() <= tolerance


def test_relative_depth_goes_on_its_own_topic(tmp_path, write_config):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": 5, "width": 32, "height": 24},
        sinks=[{"type": "topic", "endpoint": endpoint, "wait_for_subscribers": 1}],
    )
    run = start_run(write_config(config))
    with TopicSubscriber(endpoint) as subscriber:
        messages = collect(subscriber, 5)
    assert run.wait(60) == 0
    assert {m.topic for m in messages} == {"depth/relative"}
    assert all(m.depth_kind is DepthKind.RELATIVE_DISPARITY for m in messages)
    with pytest.raises(ValueError, match="not metres"):
        _ = messages[0].meters


def test_slow_subscriber_does_not_slow_the_pipeline(tmp_path, write_config):
    """A subscriber that takes 0.2 s per message: the run takes as long as without it."""

    def run_seconds(with_slow_subscriber: bool) -> float:
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        config = synthetic_config(
            tmp_path,
            source={"type": "synthetic", "frames": 60, "width": 320, "height": 240},
            backend={"type": "sleepy", "delay_ms": 10},
            sinks=[{"type": "topic", "endpoint": endpoint, "high_water_mark": 2,
                    "wait_for_subscribers": 1 if with_slow_subscriber else 0}],
        )  # fmt: skip
        path = write_config(config, f"slow-{with_slow_subscriber}.yaml")
        received: list[int] = []
        stop = threading.Event()

        def slow_subscriber() -> None:
            with TopicSubscriber(endpoint) as subscriber:
                while not stop.is_set():
                    if subscriber.receive(timeout=0.1) is not None:
                        received.append(1)
                        time.sleep(0.2)

        thread = threading.Thread(target=slow_subscriber)
        if with_slow_subscriber:
            thread.start()
        started = time.perf_counter()
        result = run_edgedepth("run", "--config", str(path))
        seconds = time.perf_counter() - started
        stop.set()
        if with_slow_subscriber:
            thread.join()
            assert 0 < len(received) < 60  # it got some, the rest were dropped for it alone
        assert result.returncode == 0, result.stderr
        return seconds

    alone = run_seconds(False)
    slowed = run_seconds(True)
    print(f"60 frames: {alone:.2f} s without a subscriber, {slowed:.2f} s with a 0.2 s/message one")
    assert slowed < alone + 3.0  # 60 × 0.2 s = 12 s if it blocked


def test_topic_echo_prints_headers(tmp_path, write_config):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    echo = subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "topic", "echo", endpoint, "--count", "3",
         "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": 3, "width": 32, "height": 24},
        backend=METRIC,
        sinks=[{"type": "topic", "endpoint": endpoint, "wait_for_subscribers": 1}],
    )
    assert run_edgedepth("run", "--config", str(write_config(config))).returncode == 0
    out, err = echo.communicate(timeout=60)
    assert echo.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("depth/image seq=0 stamp=0.000 frame_id=camera 32x24 32FC1")


def test_zenoh_transport_round_trip(tmp_path, write_config):
    pytest.importorskip("zenoh")
    port = free_port()
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "frames": 8, "width": 32, "height": 24},
        backend=METRIC,
        sinks=[
            {"type": "topic", "transport": "zenoh", "endpoint": f"tcp://127.0.0.1:{port}",
             "encoding": "16UC1", "wait_for_subscribers": 1},
            {"type": "npy", "dir": "out"},
        ],
    )  # fmt: skip
    run = start_run(write_config(config))
    time.sleep(1.0)  # the run's session listens; the subscriber connects to it
    with TopicSubscriber(f"tcp://127.0.0.1:{port}", ("depth/image",), "zenoh") as subscriber:
        messages = collect(subscriber, 8, timeout=30)
    assert run.wait(60) == 0, run.stderr.read()
    assert [m.seq for m in messages] == list(range(8))
    for message in messages:
        produced = np.load(tmp_path / "out" / f"{message.seq:06d}.npy")
        assert np.abs(message.meters - produced).max() <= 0.0005 + 1e-6


def test_port_in_use_is_a_one_line_error(tmp_path, write_config):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        config = synthetic_config(tmp_path, sinks=[{"type": "topic", "endpoint": endpoint}])
        result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert endpoint in line and "cannot bind" in line
