"""`edgedepth bench`: configs side by side, JSON for machines, a histogram plot."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from tests.conftest import run_edgedepth, synthetic_config


def test_bench_compares_configs(tmp_path, write_config):
    fast = write_config(
        synthetic_config(tmp_path, backend={"type": "sleepy", "delay_ms": 5}), "fast.yaml"
    )
    slow = write_config(
        synthetic_config(tmp_path, backend={"type": "sleepy", "delay_ms": 40}), "slow.yaml"
    )
    result = run_edgedepth(
        "bench", "--config", str(fast), "--config", str(slow), "--frames", "10", "--json",
        "--plot", str(tmp_path / "bench.png"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert list(results) == ["fast", "slow"]
    for name, sleep_ms in (("fast", 5), ("slow", 40)):
        stats = results[name]
        assert stats["frames_out"] == 10 and stats["dropped"] == 0
        assert stats["stages"]["backend:infer"]["p50_ms"] >= sleep_ms
        assert stats["peak_rss_mb"] > 10
    assert results["slow"]["fps"] < results["fast"]["fps"]
    plot = np.asarray(Image.open(tmp_path / "bench.png").convert("RGB"))
    assert plot.shape[1] > 500 and (plot != 255).any()

    table = run_edgedepth("bench", "--config", str(fast), "--frames", "3")
    assert (
        table.returncode == 0 and "backend:infer" in table.stdout and "peak RSS MB" in table.stdout
    )


def test_bench_of_a_failing_config_is_one_line(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path, backend={"type": "nonexistent"}))
    result = run_edgedepth("bench", "--config", str(config), "--frames", "3")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "nonexistent" in result.stderr.splitlines()[-1]


def test_bench_never_touches_the_configs_recordings(tmp_path, write_config):
    config = write_config(
        synthetic_config(
            tmp_path,
            source={"type": "synthetic", "frames": 5, "width": 64, "height": 48},
            sinks=[{"type": "npy", "dir": "out"}, {"type": "video", "path": "rec.mp4"}],
        )
    )
    (tmp_path / "rec.mp4").write_bytes(b"the user's recording")
    for sinks in ("off", "temp"):
        result = run_edgedepth(
            "bench", "--config", str(config), "--frames", "3", "--sinks", sinks, "--json"
        )
        assert result.returncode == 0, result.stderr
        stages = json.loads(result.stdout)["pipeline"]["stages"]
        assert ("sink:video" in stages) == (sinks == "temp")  # temp: the sinks still ran
    assert (tmp_path / "rec.mp4").read_bytes() == b"the user's recording"
    assert not (tmp_path / "out").exists()


def test_bench_plot_to_a_read_only_folder_fails_before_the_work(tmp_path, write_config):
    config = write_config(synthetic_config(tmp_path))
    result = run_edgedepth(
        "bench", "--config", str(config), "--frames", "3", "--plot", str(tmp_path / "no" / "p.png")
    )
    assert result.returncode == 2
    assert "--plot" in result.stderr.splitlines()[-1] and "does not exist" in result.stderr
    assert "bench: " not in result.stderr  # nothing was run
