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
