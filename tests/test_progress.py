"""Progress of the long steps as a terminal shows it (a real pseudo-terminal: a bar with an
estimate of the time left) and as a log gets it (a pipe: plain lines, no bar)."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgedepth.deploy import aihub
from tests.conftest import NO_PSEUDO_TERMINAL, ON_WINDOWS, run_edgedepth
from tests.test_eval import ramp, save_depth_png


def run_in_terminal(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """The command line with a terminal (120 columns) as stdout and stderr; what it showed."""
    import fcntl
    import termios

    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "edgedepth", *args],
        stdin=terminal, stdout=terminal, stderr=terminal, env={**os.environ, **env}, cwd=cwd,
    )  # fmt: skip
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 1 << 16)
        except OSError:  # EIO: the command has exited and closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    return process.wait(timeout=300), shown.decode("utf-8", "replace")


@pytest.mark.skipif(ON_WINDOWS, reason=NO_PSEUDO_TERMINAL)
def test_the_first_export_shows_a_bar_with_an_estimate_and_logs_plain_lines(tmp_path):
    from tests.dav2_fixtures import TINY, save_hf

    save_hf(tmp_path / "tiny-hf", "relative", TINY)
    config = tmp_path / "export.yaml"
    config.write_text(
        "source: {type: synthetic, frames: 1, width: 126, height: 126}\n"
        "backend: {type: dav2-relative, checkpoint: tiny-hf}\n"
    )
    env = {"EDGEDEPTH_CACHE": str(tmp_path / "cache")}
    export = ("deploy", "export", "--config", str(config))
    code, shown = run_in_terminal(
        *export, "--out", "a", "--input-size", "126x126", env=env, cwd=tmp_path
    )
    assert code == 0, shown
    # Before any export on this machine: the estimate from the graph's size.
    assert "exporting custom relative at 126×126 to ONNX, once for this size (about" in shown
    assert "%|" in shown and "of about" in shown  # the bar
    times = json.loads((tmp_path / "cache" / "step-times.json").read_text())
    assert list(times["export"]) == ["custom relative at 126×126"]

    # Another size: estimated from the last export's time on this machine, in a terminal…
    code, shown = run_in_terminal(
        *export, "--out", "b", "--input-size", "140x140", env=env, cwd=tmp_path
    )
    assert code == 0, shown
    assert "exporting custom relative at 140×140 to ONNX, once for this size (about" in shown
    assert "of about" in shown
    # …and in a log: the same line, no bar.
    piped = run_edgedepth(*export, "--out", "c", "--input-size", "154x154", env=env, cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert "exporting custom relative at 154×154 to ONNX, once for this size (about" in piped.stderr
    assert "\r" not in piped.stderr and "%|" not in piped.stderr


def test_eval_over_a_folder_counts_images_with_an_eta_when_asked(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    for index in range(3):
        save_depth_png(gt / f"{index}.png", ramp(24, 32))
        np.save(pred / f"{index}.npy", ramp(24, 32).astype(np.float32))
    command = ("eval", "--pred", str(pred), "--gt", str(gt))
    forced = run_edgedepth(*command, env={"EDGEDEPTH_PROGRESS": "1"})
    assert forced.returncode == 0, forced.stderr
    assert re.search(r"scoring: +\d+%\|.*\| \d/3 \[", forced.stderr), forced.stderr
    plain = run_edgedepth(*command)  # a pipe, no flag: no bar
    assert plain.returncode == 0 and "scoring" not in plain.stderr


class _Job:
    """The part of a qai_hub job that a wait reads (AI Hub cannot be reached from tests)."""

    job_id, url = "jabc123", "https://app.aihub.qualcomm.com/jobs/jabc123/"

    def __init__(self) -> None:
        from qai_hub.client import JobStatus as status

        states = ("CREATED", "OPTIMIZING_MODEL", "SUCCESS")
        self.remaining = (status(status.State[state]) for state in states)

    def get_status(self):
        return next(self.remaining)


def test_ai_hub_waits_show_the_job_state_beside_a_bar(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(aihub, "POLL_SECONDS", 0.6)
    monkeypatch.setenv("EDGEDEPTH_CACHE", str(tmp_path))
    monkeypatch.setenv("EDGEDEPTH_PROGRESS", "1")
    aihub.wait_for(_Job(), "compile")
    shown = capsys.readouterr().err
    assert "compile: optimizing_model" in shown  # the state changes, as lines
    assert "(no estimate yet: the first time on this machine), optimizing_model" in shown
    aihub.wait_for(_Job(), "compile")  # the second wait knows how long the first took
    assert "of about 1 s" in capsys.readouterr().err
