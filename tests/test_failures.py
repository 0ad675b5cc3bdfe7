"""How runs end when something goes wrong: no hang, nothing already captured or recorded lost.

Each test runs the real command line in a subprocess; the subprocess timeouts are the hang
checks (the broken runtime never returned)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import POSIX_SIGNALS, SLEEPY, TESTS, last_line, run_edgedepth, synthetic_config

FULL_DISK = str(TESTS / "plugins" / "full_disk.py")


def npy_indices(folder: Path) -> list[int]:
    assert not list(folder.glob("*.partial")), "a half-written file was left behind"
    return sorted(int(path.stem) for path in folder.glob("*.npy"))


def test_failing_sink_that_is_the_slowest_stage_ends_the_run(tmp_path, write_config):
    # The failing sink's queue is full when it fails: its producer used to wait forever.
    config = write_config(
        synthetic_config(
            tmp_path,
            plugins=[SLEEPY, FULL_DISK],
            source={"type": "synthetic", "frames": 2000, "width": 64, "height": 48},
            sinks=[
                {"type": "npy", "dir": "out"},
                {"type": "full-disk", "fail_at": 5, "delay_ms": 30},
            ],
            runtime={"queue_size": 2},
        )
    )
    result = run_edgedepth("run", "--config", str(config), timeout=60)
    assert result.returncode == 1, result.stderr
    line = last_line(result)
    assert "sink 'full-disk'" in line and "No space left on device" in line
    assert "Traceback" not in result.stderr
    written = npy_indices(tmp_path / "out")
    assert written == list(range(len(written)))  # the other sink finalised, nothing skipped
    assert 5 <= len(written) < 2000


def test_source_error_keeps_every_frame_captured_before_it(tmp_path, write_config):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(40):
        pixels = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index:02d}.png")
    (folder / "img29.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)  # the 30th image
    config = write_config(
        synthetic_config(
            tmp_path,
            source={"type": "images", "path": "photos"},
            backend={"type": "sleepy", "delay_ms": 20},
        )
    )
    result = run_edgedepth("run", "--config", str(config), timeout=120)
    assert result.returncode == 1, result.stderr
    line = last_line(result)
    assert "source 'images'" in line and "img29.png" in line and "frame 29" in line
    assert npy_indices(tmp_path / "out") == list(range(29))


def test_a_source_error_is_reported_before_its_close_error(tmp_path, write_config):
    """Reading frame 2 fails, then closing the source fails too: the frame's error is the one
    the user is told (the first failure wins; closing is part of ending the stream)."""
    config = synthetic_config(tmp_path, source={"type": "broken", "fail_at": 2})
    config["plugins"].append(str(TESTS / "plugins" / "broken_source.py"))
    result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode == 1, result.stderr
    line = last_line(result)
    assert "source 'broken'" in line and "frame 2 is unreadable" in line, line
    assert npy_indices(tmp_path / "out") == [0, 1]


@POSIX_SIGNALS
def test_ctrl_c_interrupts_the_wait_for_subscribers(tmp_path, write_config):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(
        synthetic_config(
            tmp_path,
            sinks=[
                {
                    "type": "topic",
                    "endpoint": f"tcp://127.0.0.1:{port}",
                    "wait_for_subscribers": 1,
                    "subscriber_timeout": 120,
                },
                {"type": "npy", "dir": "out"},
            ],
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    for line in process.stderr:  # the sink says when it starts waiting
        if "waiting up to" in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)  # not the 120 s of the subscriber timeout
    assert process.returncode == 130, stderr
    assert "stopped by SIGINT" in stderr


def test_display_on_an_unusable_screen_fails_fast(tmp_path, write_config):
    pytest.importorskip("tkinter")
    config = write_config(
        synthetic_config(
            tmp_path,
            source={"type": "synthetic", "frames": 500, "width": 64, "height": 48},
            sinks=[{"type": "npy", "dir": "out"}, {"type": "display"}],
            runtime={"queue_size": 2},
        )
    )
    result = run_edgedepth(
        "run", "--config", str(config), timeout=60, env={**os.environ, "DISPLAY": ":4747"}
    )
    assert result.returncode == 1, result.stderr
    assert "sink 'display'" in last_line(result) and "cannot open a window" in last_line(result)
    written = npy_indices(tmp_path / "out")
    assert written == list(range(len(written)))


def test_truncated_video_is_reported_and_its_readable_frames_kept(tmp_path, write_config):
    import av

    clip = tmp_path / "clip.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(clip), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _ in range(60):
            pixels = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) // 2])  # cut in half, as a broken download
    config = write_config(synthetic_config(tmp_path, source={"type": "video", "path": "clip.mp4"}))
    result = run_edgedepth("run", "--config", str(config), timeout=120)
    # FFmpeg ends the stream early (threaded decoding) or fails on the cut packet: either way
    # the user is told, and every readable frame was processed.
    written = npy_indices(tmp_path / "out")
    assert 10 < len(written) < 60 and written == list(range(len(written)))
    if result.returncode == 0:
        assert f"clip.mp4: {len(written)} of 60 frames decoded: the file ends early" in (
            result.stderr
        )
    else:
        assert f"unreadable after {len(written)} of 60 frames" in last_line(result)
