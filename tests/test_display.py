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

from edgedepth.media.colorize import CAPTION_TEXT
from tests.conftest import synthetic_config

HAS_XVFB = bool(shutil.which("Xvfb") and shutil.which("xdotool"))
if not HAS_XVFB and os.environ.get("CI"):
    # CI installs them (.ci/run): a missing one there is a broken CI, not a reason to skip.
    raise RuntimeError("CI: Xvfb and xdotool are required for the display tests")

pytestmark = [
    pytest.mark.display,
    # One worker (pytest-xdist) for the module: one Xvfb server.
    pytest.mark.xdist_group("display"),
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


def start_window(config: Path, display: str) -> tuple[subprocess.Popen, str]:
    """``edgedepth run`` with a display sink, and its window's id once it shows (found by the
    config's name: xdotool's search reads the Latin-1 WM_NAME, not the UTF-8 title)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "run", "--config", str(config)],
        env={**os.environ, "DISPLAY": display},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    window = ""
    deadline = time.monotonic() + 60
    while not window and time.monotonic() < deadline and process.poll() is None:
        window = xdotool(display, "search", "--name", f"{config.name}$").split("\n")[0]
        time.sleep(0.2)
    if not window:
        process.kill()
        raise AssertionError(f"no window appeared: {process.communicate()[1]}")
    time.sleep(1.0)
    return process, window


def quit_window(process: subprocess.Popen, display: str, window: str) -> str:
    """Press q in the window; the run's stderr."""
    try:
        xdotool(display, "windowfocus", "--sync", window)
        xdotool(display, "key", "q")
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    return stderr


def live_config(tmp_path: Path, width: int, height: int, **backend) -> dict:
    return synthetic_config(
        tmp_path,
        source={
            "type": "synthetic",
            "frames": 100000,
            "width": width,
            "height": height,
            "fps": 30,
            "live": True,
        },
        backend={"type": "sleepy", "kind": "metric-meters", "scale": 0.05, **backend},
        sinks=[{"type": "display", "snapshot_dir": "snaps"}],
    )


def label_height(picture: np.ndarray, panel_left: int) -> int:
    """Height in pixels of the colour bar's top value label (white text, rows from the top)."""
    white = (picture[:, panel_left:] > 200).all(axis=2).any(axis=1)
    rows = np.flatnonzero(white)
    assert rows.size, "no label in the colour bar"
    run_end = rows[0]
    while run_end + 1 < len(white) and white[run_end + 1]:
        run_end += 1
    return int(run_end - rows[0] + 1)


def test_window_shows_depth_is_named_for_the_config_and_s_says_where_it_saved(
    tmp_path, write_config, xvfb
):
    config = write_config(live_config(tmp_path, 160, 120), name="metric.yaml")
    process, window = start_window(config, xvfb)
    try:
        assert xdotool(xvfb, "getwindowname", window) == "edgedepth — metric.yaml"
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
    finally:
        stderr = quit_window(process, xvfb, window)
    (snapshot,) = (tmp_path / "snaps").glob("edgedepth-*.png")
    assert f"edgedepth: display: saved {snapshot.resolve()}" in stderr.splitlines()


def test_window_labels_grow_with_the_picture_and_notes_are_captioned(tmp_path, write_config, xvfb):
    heights = {}
    for width, height in ((160, 120), (200, 540)):
        note = "RANDOM WEIGHTS: a note from the backend"
        config = write_config(live_config(tmp_path, width, height, note=note), f"{height}.yaml")
        process, window = start_window(config, xvfb)
        try:
            picture = np.asarray(
                ImageGrab.grab(bbox=window_box(xvfb, window), xdisplay=xvfb).convert("RGB")
            )
        finally:
            quit_window(process, xvfb, window)
        heights[height] = label_height(picture[:height], 2 * width)
        # The note, in amber on a black band under the picture (which it does not cover).
        band = picture[height:].reshape(-1, 3).astype(int)
        assert band.shape[0] > 0
        amber = (np.abs(band - CAPTION_TEXT).max(axis=1) < 40).mean()
        assert amber > 0.01 and (band.max(axis=1) < 30).mean() > 0.7
    # 540 rows get labels about 540/36 = 15 px tall, 120 rows the 9 px minimum.
    assert heights[540] >= 1.4 * heights[120], heights


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
