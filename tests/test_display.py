"""The display window, for real: Xvfb, screenshots of the window, keys sent with xdotool."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import ImageGrab

from tests.conftest import synthetic_config

HAS_XVFB = bool(shutil.which("Xvfb") and shutil.which("xdotool"))
if not HAS_XVFB and os.environ.get("CI"):
    # CI installs them (.ci/run): a missing one there is a broken CI, not a reason to skip.
    raise RuntimeError("CI: Xvfb and xdotool are required for the display tests")

pytestmark = [
    pytest.mark.display,
    pytest.mark.skipif(
        not HAS_XVFB,
        reason="needs Xvfb and xdotool: apt-get install xvfb xdotool (.ci/run installs them)",
    ),
]


@pytest.fixture(scope="module")
def xvfb():
    display = f":{90 + os.getpid() % 100}"
    server = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{display[1:]}").exists():
        assert time.monotonic() < deadline, "Xvfb did not start"
        time.sleep(0.05)
    yield display
    server.terminate()
    server.wait(5)


def xdotool(display: str, *args: str) -> str:
    result = subprocess.run(
        ["xdotool", *args],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout.strip()


def window_box(display: str, window: str) -> tuple[int, int, int, int]:
    values = dict(
        line.split("=")
        for line in xdotool(display, "getwindowgeometry", "--shell", window).splitlines()
    )
    x, y, w, h = (int(values[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
    return x, y, x + w, y + h


@pytest.mark.parametrize("toolkit", ["auto"])
def test_window_shows_depth_and_q_quits(tmp_path, write_config, xvfb, toolkit):
    title = f"edgedepth-test-{toolkit}"
    config = write_config(
        synthetic_config(
            tmp_path,
            source={
                "type": "synthetic",
                "frames": 100000,
                "width": 160,
                "height": 120,
                "fps": 30,
                "live": True,
            },
            backend={"type": "sleepy", "kind": "metric-meters", "scale": 0.05},
            sinks=[
                {"type": "display", "toolkit": toolkit, "title": title, "snapshot_dir": "snaps"}
            ],
        )
    )
    env = {**os.environ, "DISPLAY": xvfb}
    process = subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        window = ""
        deadline = time.monotonic() + 60
        while not window and time.monotonic() < deadline:
            window = xdotool(xvfb, "search", "--name", title).split("\n")[0]
            time.sleep(0.2)
        assert window, "no window appeared"
        time.sleep(1.0)
        box = window_box(xvfb, window)
        first = np.asarray(ImageGrab.grab(bbox=box, xdisplay=xvfb).convert("RGB"))
        time.sleep(1.5)
        second = np.asarray(ImageGrab.grab(bbox=box, xdisplay=xvfb).convert("RGB"))
        assert first.shape[1] >= 160 * 2 + 90 and first.shape[0] >= 120
        depth_panel = first[25:120, 160:320].reshape(-1, 3).astype(int)
        # A colour map, not grey: many distinct colours with unequal channels.
        assert len({tuple(p) for p in depth_panel}) > 50
        assert np.abs(depth_panel[:, 0] - depth_panel[:, 2]).mean() > 20
        # The scene moves (orbiting camera): the depth panel changes between screenshots.
        assert np.abs(second[25:120, 160:320].astype(int) - first[25:120, 160:320]).mean() > 1
        # No window manager on Xvfb: focus the window, then type (XTEST, like a real keyboard).
        xdotool(xvfb, "windowfocus", "--sync", window)
        xdotool(xvfb, "key", "s")
        time.sleep(0.5)
        xdotool(xvfb, "key", "q")
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    snapshots = list((tmp_path / "snaps").glob("edgedepth-*.png"))
    assert len(snapshots) == 1


def test_no_screen_is_a_clear_error(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path, sinks=[{"type": "display", "toolkit": "tk"}]))
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run(
        [sys.executable, "-m", "edgedepth", "run", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "display: no screen (DISPLAY is not set)" in result.stderr
    assert "Traceback" not in result.stderr
