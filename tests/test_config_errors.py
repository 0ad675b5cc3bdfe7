"""Every kind of bad input: one line naming file and key, non-zero exit, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SLEEPY, run_edgedepth, synthetic_config

TWIN = str(Path(SLEEPY).with_name("sleepy_twin.py"))


def error_line(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"sinkz": []}, "pipeline.yaml: sinkz: unknown key; did you mean 'sinks'?"),
        (
            {"runtime": {"queue_size": "many"}},
            "pipeline.yaml: runtime.queue_size: Input should be a valid integer",
        ),
        (
            {"runtime": {"mode": "fast"}},
            "pipeline.yaml: runtime.mode: Input should be 'auto', 'live' or 'file'",
        ),
        (
            {"sinks": [{"type": "npy", "dri": "x"}]},
            "pipeline.yaml: sinks[0].dri: unknown key; did you mean 'dir'?",
        ),
        ({"sinks": [{"type": "npy"}]}, "pipeline.yaml: sinks[0].dir: required key is missing"),
        (
            {"backend": {"type": "nope"}},
            "pipeline.yaml: backend.type: unknown backend 'nope' "
            "(registered: dav2-metric, dav2-relative, sleepy)",
        ),
        (
            {"source": {"type": "video", "path": "missing.mp4"}},
            "pipeline.yaml: source.path: file not found:",
        ),
        (
            {"preprocess": {"resize": {"policy": "fixed", "width": -3}}},
            "pipeline.yaml: preprocess.resize.width: Input should be greater than 0",
        ),
        (
            {"preprocess": {"resize": {"policy": "squash"}}},
            "pipeline.yaml: preprocess.resize.policy: unknown resize policy 'squash'",
        ),
        ({"plugins": [SLEEPY, TWIN]}, "backend 'sleepy' is registered by two plugins:"),
        (
            {"plugins": ["no_such_module_xyz"]},
            "pipeline.yaml: plugins[0]: cannot import plugin 'no_such_module_xyz'",
        ),
        ({"plugins": ["nowhere/plugin.py"]}, "pipeline.yaml: plugins[0]: plugin file not found:"),
    ],
)
def test_bad_config(tmp_path, write_config, change, expected):
    config = write_config(synthetic_config(tmp_path, **change))
    for command in ("check", "run"):
        line = error_line(run_edgedepth(command, "--config", str(config)))
        assert line.startswith("error: ")
        assert expected in line, line
    if "two plugins" in expected:
        assert "sleepy.py" in line and "sleepy_twin.py" in line
    assert not (tmp_path / "out").exists()  # nothing started


def test_invalid_yaml_names_line(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("source: {type: synthetic\nbackend: x\n")
    line = error_line(run_edgedepth("check", "--config", str(config)))
    assert "broken.yaml: invalid YAML (line" in line


def test_missing_config_file(tmp_path):
    line = error_line(run_edgedepth("run", "--config", str(tmp_path / "nope.yaml")))
    assert "nope.yaml: config file not found" in line


def test_unreadable_video_is_an_error_before_start(tmp_path, write_config):
    (tmp_path / "garbage.mp4").write_bytes(b"\x00not a video" * 100)
    config = write_config(
        synthetic_config(tmp_path, source={"type": "video", "path": "garbage.mp4"})
    )
    line = error_line(run_edgedepth("run", "--config", str(config)))
    assert "pipeline.yaml: source:" in line and "garbage.mp4: cannot open video" in line


def test_absent_camera_is_an_error_before_start(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path, source={"type": "camera", "device": 63}))
    line = error_line(run_edgedepth("run", "--config", str(config)))
    assert "camera: /dev/video63 not found" in line


def test_bad_set_override(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path))
    line = error_line(run_edgedepth("check", "--config", str(config), "--set", "sinks[4].dir=x"))
    assert "--set sinks[4].dir: sinks[4]: no such list item" in line
    line = error_line(run_edgedepth("check", "--config", str(config), "--set", "novalue"))
    assert "expected KEY.PATH=VALUE" in line


def test_check_accepts_a_valid_config(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path))
    result = run_edgedepth("check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_set_switches_a_section_to_another_plugin(tmp_path, write_config):
    """--set source.type=video drops the synthetic source's keys (frames, width, …)."""
    import av
    import numpy as np

    with av.open(str(tmp_path / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((24, 32, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    config = write_config(synthetic_config(tmp_path))
    result = run_edgedepth(
        "run",
        "--config",
        str(config),
        "--set",
        "source.type=video",
        "--set",
        "source.path=clip.mp4",
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").glob("*.npy"))) == 3


def test_every_problem_is_reported_at_once(tmp_path, write_config):
    config = synthetic_config(
        tmp_path,
        source={"type": "synthetic", "widht": 3},
        sinks=[{"type": "npy", "dri": "x"}],
        runtime={"queue_size": 0},
    )
    line = error_line(run_edgedepth("check", "--config", str(write_config(config))))
    assert "runtime.queue_size" in line
    config["runtime"] = {}
    line = error_line(run_edgedepth("check", "--config", str(write_config(config))))
    assert "source.widht: unknown key; did you mean 'width'?" in line
    assert "sinks[0].dri: unknown key; did you mean 'dir'?" in line
    assert "sinks[0].dir: required key is missing" not in line  # the typo stands for it
    assert "more problem" not in line


def test_binary_config_is_a_one_line_error(tmp_path):
    config = tmp_path / "binary.yaml"
    config.write_bytes(b"\xff\xfe\x00\x01 source: x\n")
    line = error_line(run_edgedepth("check", "--config", str(config)))
    assert "binary.yaml: not a text file" in line
