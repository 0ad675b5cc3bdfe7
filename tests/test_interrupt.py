"""Ctrl-C in the middle of a long inference: exit code 130, sinks finalised, and no abort of
the C++ runtime ("terminate called…", exit 134) from a daemon thread still inside ONNX Runtime
when the interpreter shuts down. A CPU run is cancelled (RunOptions.terminate); a QNN graph runs
as one native call that cannot be, so the process leaves without waiting for it."""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgedepth.engine.run import CANCEL_GRACE_SECONDS
from edgedepth.media.recording import read_depth_recording
from edgedepth.runtime.sessions import cpu_session
from tests.bad_inputs import Started, slow_close_run, slow_import
from tests.conftest import POSIX_SIGNALS
from tests.onnx_models import conv_stack

pytestmark = POSIX_SIGNALS

#: The cancel test's frame, in multiples of CANCEL_GRACE_SECONDS (measured here, not assumed).
SLOW_FRAME_GRACES = 4
SLOW_LAYERS = 24


def interrupt_after_first_frame(config: Path, cwd: Path) -> tuple[int, str, float]:
    """Run, send SIGINT as soon as frame 0 is written (the backend is then inside frame 1);
    (exit code, stderr, seconds from the signal to the exit)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edgedepth", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    deadline = time.monotonic() + 180
    while not (cwd / "npy" / "000000.npy").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no first frame: {process.communicate()[1][-2000:]}")
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr, time.monotonic() - signalled


def write_config(tmp_path: Path, model: Path, runtime: str, size: int = 126) -> Path:
    config = tmp_path / "slow.yaml"
    config.write_text(
        "source: {type: synthetic, frames: 50, width: 160, height: 120}\n"
        f"preprocess: {{resize: {{policy: fixed, width: {size}, height: {size}}}}}\n"
        f"backend: {{type: dav2-relative, model: {model.name}, runtime: {runtime}}}\n"
        "sinks: [{type: npy, dir: npy}, {type: video, lossless: depth.mkv}]\n"
        "runtime: {cache_dir: cache}\n"
    )
    return config


def assert_clean_stop(tmp_path: Path, code: int, stderr: str) -> None:
    assert code == 130, stderr[-3000:]
    assert "terminate called" not in stderr and "Traceback" not in stderr
    assert "stopped by SIGINT" in stderr
    finished = len(list((tmp_path / "npy").glob("*.npy")))
    recorded = list(read_depth_recording(tmp_path / "depth.mkv"))  # finalised, readable
    assert finished >= 1 and len(recorded) == finished


def slow_cpu_model(folder: Path) -> tuple[Path, int]:
    """A conv stack whose frame should take :data:`SLOW_FRAME_GRACES` × the cancel grace on the
    CPU of this machine, now: its image size scaled from the measured frame of a probe with a
    sixth of its layers (the fastest of three, so that a machine busy while measuring is not
    underrated); (model, size)."""
    probe = conv_stack(folder / "probe.onnx", layers=SLOW_LAYERS // 6, channels=128, size=126)
    per_frame = 6 * fastest_frame(probe, 126)
    scale = math.sqrt(SLOW_FRAME_GRACES * CANCEL_GRACE_SECONDS / per_frame)
    size = max(126, 2 * math.ceil(126 * scale / 2))
    return conv_stack(folder / "slow.onnx", layers=SLOW_LAYERS, channels=128, size=size), size


def fastest_frame(model: Path, size: int, runs: int = 3) -> float:
    """Seconds of the fastest of ``runs`` inferences in an ONNX Runtime CPU session set up as
    `edgedepth run` sets up its own."""
    session = cpu_session(model)
    image = np.zeros((1, 3, size, size), np.float32)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, {"image": image})
        timings.append(time.perf_counter() - started)
    return min(timings)


def test_ctrl_c_cancels_a_long_cpu_inference(tmp_path):
    """Calibrated to this machine: a frame takes several times the grace a stage gets after
    cancel(), so a cancel that does not cut the inference short is seen on any CPU speed."""
    model, size = slow_cpu_model(tmp_path)
    code, stderr, seconds = interrupt_after_first_frame(
        write_config(tmp_path, model, "onnx-cpu", size), tmp_path
    )
    # The premise, in this run: its frame 0 took well over the grace (else this proves nothing).
    frame_ms = float(re.search(r"backend:infer +1 +[\d.]+ +[\d.]+ +([\d.]+)", stderr)[1])
    assert frame_ms > 2000 * CANCEL_GRACE_SECONDS, stderr[-3000:]
    assert_clean_stop(tmp_path, code, stderr)
    assert "not waiting for" not in stderr  # the run was cancelled, not abandoned
    assert seconds < 10


@pytest.mark.qnn
@pytest.mark.slow  # ~20 s on the emulator
def test_ctrl_c_during_a_qnn_graph_on_the_emulator(tmp_path):
    pytest.importorskip("onnxruntime_qnn")
    # Several seconds a frame here, well beyond the 2 s cancel grace even when frame 0 is slow
    # to reach the sinks on a loaded machine.
    model = conv_stack(tmp_path / "slow.onnx", layers=48)
    code, stderr, _ = interrupt_after_first_frame(write_config(tmp_path, model, "qnn"), tmp_path)
    assert_clean_stop(tmp_path, code, stderr)
    assert "not waiting for backend" in stderr  # one native call: left, not torn down
    assert stderr.count("NO NPU on this machine") == 1  # said once, loudly


def test_ctrl_c_while_a_sink_finishes_its_file_says_so_and_a_second_one_stops_waiting(
    tmp_path,
):
    """A sink whose close() takes long (in Python): the first Ctrl-C waits for it and says
    which sink, where it is and how to stop waiting; the second ends the wait at once (a row of
    the bad-input table too)."""
    started = Started(slow_close_run(tmp_path), tmp_path)
    started.until((tmp_path / "out" / "000000.npy").exists)
    started.interrupt()
    started.until(lambda: started.said("Ctrl-C again"))
    started.interrupt()
    signalled = time.monotonic()
    code, stderr = started.finish(30)
    assert code == 130
    assert time.monotonic() - signalled < 10
    assert "Traceback" not in stderr and "native" not in stderr
    assert "waiting up to 30 s for sink 'slow-close' (at slow_close.py:" in stderr
    assert "in close) to finish (Ctrl-C again to stop waiting)" in stderr
    assert "not waiting for sink 'slow-close' (at slow_close.py:" in stderr, stderr
    assert "frames finished and finalised" not in stderr  # the slow sink was not


@pytest.mark.parametrize("entry", ["module", "script"])
def test_ctrl_c_while_edgedepth_loads_is_one_line(tmp_path, entry):
    """SIGINT while edgedepth's modules are still being imported (a slow disk, a big plugin):
    exit 130 and one line, no KeyboardInterrupt traceback, from `python -m edgedepth` and from
    the installed `edgedepth` script."""
    script = [str(Path(sys.executable).parent / "edgedepth")] if entry == "script" else None
    started = Started(["plugins"], tmp_path, slow_import(tmp_path), command=script)
    started.until((tmp_path / "importing").exists)
    started.interrupt()
    code, stderr = started.finish(60)
    assert code == 130, stderr
    assert stderr == "error: interrupted by SIGINT\n"
