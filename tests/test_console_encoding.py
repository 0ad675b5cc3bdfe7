"""Every command's output survives the code page of a Windows pipe or file (cp1252, the ANSI
code page of Western Windows; cp437, the OEM one of its consoles): `edgedepth doctor >
report.txt` is the bug-report path. What the code page has is written as itself, the rest as
ASCII (→ as ->), never a crash. The commands write to real files, as a shell redirect does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgedepth.system.console import ascii_rendering
from tests.conftest import POSIX_PIPE, synthetic_config

CODE_PAGES = ["cp1252", "cp437"]


def redirected(tmp_path: Path, encoding: str, *args: str) -> tuple[int, str, str]:
    """Run ``edgedepth ARGS > out.txt 2> err.txt`` with Python's streams in ``encoding``; the
    exit code and both files decoded with that encoding (strictly: they must be valid)."""
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    env = {**os.environ, "PYTHONIOENCODING": encoding, "QAIHUB_CLIENT_INI": str(tmp_path / "none")}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        code = subprocess.run(
            [sys.executable, "-m", "edgedepth", *args], stdout=stdout, stderr=stderr,
            cwd=tmp_path, env=env, timeout=300,
        ).returncode  # fmt: skip
    return code, out.read_bytes().decode(encoding), err.read_bytes().decode(encoding)


def test_the_ascii_rendering_of_what_a_code_page_lacks():
    assert ascii_rendering("capture → preprocess") == "capture -> preprocess"
    assert ascii_rendering("518×518 — δ1 ≥ 0.9, 5 µs…") == "518x518 - d1 >= 0.9, 5 us..."
    assert ascii_rendering("Caméra intégrée") == "Camera integree"


@pytest.mark.parametrize("encoding", CODE_PAGES)
def test_help_and_plugins(tmp_path, encoding):
    code, out, err = redirected(tmp_path, encoding, "--help")
    assert code == 0, err
    assert "capture -> preprocess -> depth backend" in " ".join(out.split())
    code, out, err = redirected(tmp_path, encoding, "plugins", "--verbose")
    assert code == 0, err
    # What the code page has stays itself: cp1252 has × but not ≥, cp437 the other way round.
    times, at_least = ("×", ">=") if encoding == "cp1252" else ("x", "≥")
    assert f"stretch to width {times} height" in out
    assert f"shorter side {at_least} lower_bound" in out


@pytest.mark.parametrize("encoding", CODE_PAGES)
def test_doctor_and_its_json(tmp_path, encoding):
    code, out, err = redirected(tmp_path, encoding, "doctor")
    assert code == 0, err
    # The AI Hub hint: "workbench.aihub.qualcomm.com → Account → Settings".
    assert "-> Account -> Settings" in out and out.rstrip().splitlines()[-1].startswith("NPU: ")
    code, out, err = redirected(tmp_path, encoding, "doctor", "--json")
    assert code == 0, err
    assert "Account" in yaml.safe_load(out)["aihub"]["problem"]


@pytest.mark.parametrize("encoding", CODE_PAGES)
def test_run_and_check(tmp_path, encoding):
    (tmp_path / "pipeline.yaml").write_text(
        yaml.safe_dump(synthetic_config(tmp_path, runtime={"max_frames": 3}))
    )
    code, out, err = redirected(tmp_path, encoding, "check", "--config", "pipeline.yaml")
    assert code == 0, err
    times = "×" if encoding == "cp1252" else "x"
    assert f"OK (64{times}48 file source -> 64{times}48 backend input)" in out
    code, out, err = redirected(tmp_path, encoding, "run", "--config", "pipeline.yaml")
    assert code == 0, err
    assert f"synthetic 64x48 (file mode) -> none 48{times}64" in err  # the pipeline line
    assert "frames" in err and len(list((tmp_path / "out").glob("*.npy"))) == 3


@pytest.mark.skipif(sys.platform == "win32", reason=POSIX_PIPE)
def test_output_cut_short_by_its_reader_exits_quietly(tmp_path):
    """`edgedepth plugins --verbose | head -1`: the reader closes the pipe; edgedepth stops with
    141 (as a tool SIGPIPE ends) and says nothing, instead of "unexpected BrokenPipeError"."""
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before anything is written: every write fails
    done = subprocess.run(
        [sys.executable, "-m", "edgedepth", "plugins", "--verbose"],
        stdout=writer,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    os.close(writer)
    assert (done.returncode, done.stderr) == (141, "")
