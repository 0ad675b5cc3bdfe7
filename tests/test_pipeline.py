"""The streaming runtime, end to end through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgedepth.media.synthetic_scene import SyntheticScene
from tests.conftest import POSIX_SIGNALS, SLEEPY, run_edgedepth, synthetic_config


def test_file_mode_writes_every_frame_in_order(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path, runtime={"queue_size": 2}))
    result = run_edgedepth("run", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["frames_in"] == stats["frames_out"] == 12
    assert stats["dropped"] == 0
    files = sorted((tmp_path / "out").glob("*.npy"))
    assert [f.name for f in files] == [f"{i:06d}.npy" for i in range(12)]
    # The depth is the backend's function of exactly that frame (no frame mixed up or skipped).
    scene = SyntheticScene(seed=0, width=64, height=48, fps=30.0, motion="orbit")
    for index in (0, 5, 11):
        image, _ = scene.render(index)
        expected = image.astype(np.float32).mean(axis=2)
        np.testing.assert_allclose(np.load(files[index]), expected, rtol=1e-6)
    # Summary table on stderr: per-stage timings and counts.
    for stage in ("capture", "resize:none", "backend:infer", "sink:npy", "end-to-end latency"):
        assert stage in result.stderr
    # …and what was written, with its frame count and size.
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    assert f"wrote {tmp_path / 'out'}{os.sep}: 12 frames, {size_mb:.1f} MB" in result.stderr


def test_stages_overlap_throughput_is_the_slowest_stage(tmp_path, write_config):
    # Two stages of 40 ms each: run one after the other they give 12.5 FPS, overlapped 25 FPS.
    config = write_config(
        synthetic_config(
            tmp_path,
            source={"type": "synthetic", "frames": 40, "width": 64, "height": 48},
            backend={"type": "sleepy", "delay_ms": 40},
            sinks=[{"type": "sleepy", "delay_ms": 40}],
        )
    )
    result = run_edgedepth("run", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["stages"]["backend:infer"]["p50_ms"] >= 40
    assert stats["stages"]["sink:sleepy"]["p50_ms"] >= 40
    serial_fps, overlapped_fps = 1000 / 80, 1000 / 40
    assert stats["steady_fps"] > (serial_fps + overlapped_fps) / 2, stats["steady_fps"]
    assert stats["steady_fps"] <= overlapped_fps * 1.05


def test_live_mode_drops_stale_frames_and_bounds_latency(tmp_path, write_config):
    # A camera-like source at 100 FPS into a 60 ms backend: most frames must be dropped, and
    # latency must stay near one backend time instead of growing with the run.
    config = write_config(
        synthetic_config(
            tmp_path,
            source={
                "type": "synthetic",
                "frames": 150,
                "width": 64,
                "height": 48,
                "fps": 100,
                "live": True,
            },
            backend={"type": "sleepy", "delay_ms": 60},
        )
    )
    result = run_edgedepth("run", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["frames_in"] == 150
    assert stats["dropped"] > 50
    assert stats["frames_out"] + stats["dropped"] == stats["frames_in"]
    assert stats["latency"]["max_ms"] < 400, stats["latency"]
    written = sorted(int(p.stem) for p in (tmp_path / "out").glob("*.npy"))
    assert len(written) == stats["frames_out"]
    assert written == sorted(set(written))  # newest frames, in order, no repeats
    assert written[-1] >= 140  # the end of the stream is reached, not stuck on old frames


def test_plugin_raising_mid_stream_stops_with_an_error_naming_it(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path, backend={"type": "sleepy", "fail_at": 5}))
    result = run_edgedepth("run", "--config", str(config))
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: backend 'sleepy'")
    assert "sleepy.py" in last_line and "frame 5" in last_line and "boom" in last_line
    assert "Traceback" not in result.stderr
    # Frames finished before the failure are on disk, complete.
    files = sorted((tmp_path / "out").glob("*"))
    assert [f.name for f in files] == [f"{i:06d}.npy" for i in range(5)]
    for f in files:
        assert np.load(f).shape == (48, 64)


def test_debug_flag_shows_the_traceback(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path, backend={"type": "sleepy", "fail_at": 0}))
    result = run_edgedepth("run", "--config", str(config), "--debug")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: boom" in result.stderr


@POSIX_SIGNALS
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_starting_ends_in_one_line(tmp_path, write_config, sig, code):
    """Stopped while the backend builds (a first export, a QNN compile): the signal's exit code
    and one line, no traceback, nothing left running."""
    building = tmp_path / "building"
    backend = {"type": "sleepy", "build_ms": 30000, "building_marker": str(building)}
    config = write_config(synthetic_config(tmp_path, backend=backend))
    process = subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not building.exists():  # imported, config read, the backend building
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith(("error: ", "edgedepth: "))
    assert not (tmp_path / "out").exists()


@POSIX_SIGNALS
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_run_finalises_files(tmp_path, write_config, sig, code):
    config = write_config(
        synthetic_config(
            tmp_path,
            source={"type": "synthetic", "frames": 1000, "width": 64, "height": 48},
            backend={"type": "sleepy", "delay_ms": 20},
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out_dir = tmp_path / "out"
    deadline = time.monotonic() + 60
    while len(list(out_dir.glob("*.npy"))) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"stopped by {sig.name}" in stderr
    assert "Traceback" not in stderr
    files = sorted(out_dir.iterdir())
    assert 10 <= len(files) < 1000
    assert all(f.suffix == ".npy" for f in files)  # no half-written file left behind
    indices = [int(f.stem) for f in files]
    assert indices == list(range(len(files)))  # every frame up to the stop, none missing
    for f in files:
        assert np.load(f).shape == (48, 64)


def test_max_frames_and_set_override(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path))
    result = run_edgedepth(
        "run",
        "--config",
        str(config),
        "--set",
        "runtime.max_frames=3",
        "--set",
        "sinks[0].dir=other",
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "other").glob("*.npy"))) == 3
    assert not (tmp_path / "out").exists()


def test_paths_are_relative_to_the_config_file(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path, plugins=["plugins_dir/sleepy.py"]))
    (tmp_path / "plugins_dir").mkdir()
    (tmp_path / "plugins_dir" / "sleepy.py").write_text(Path(SLEEPY).read_text())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_edgedepth(
        "run", "--config", str(config), "--set", "runtime.max_frames=2", cwd=elsewhere
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").glob("*.npy"))) == 2
    assert not (elsewhere / "out").exists()
