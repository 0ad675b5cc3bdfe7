"""DepthAnythingV2 on this machine's QNN HTP emulator (onnxruntime-qnn), through `edgedepth run`.

Each run is its own process: after a failed QNN session, later ones in the same process can fail.
The emulator is slow, so the model is a 4-block ViT at 126×126."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime_qnn")
pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.conftest import run_edgedepth, synthetic_config
from tests.dav2_fixtures import TINY, save_hf

pytestmark = pytest.mark.qnn


def test_qnn_fp16_matches_cpu_and_reuses_the_context_binary(tmp_path, write_config):
    checkpoint = tmp_path / "tiny-metric-hf"
    save_hf(checkpoint, "metric", TINY)

    def run(runtime: str, out: str, **qnn):
        backend = {"type": "dav2-metric", "checkpoint": str(checkpoint), "runtime": runtime}
        if qnn:
            backend["qnn"] = qnn
        config = synthetic_config(
            tmp_path,
            plugins=[],
            source={"type": "synthetic", "frames": 2, "width": 160, "height": 120},
            preprocess={"resize": {"policy": "fixed", "width": 126, "height": 126}},
            backend=backend,
            sinks=[{"type": "npy", "dir": out}],
            runtime={"cache_dir": "cache"},
        )
        result = run_edgedepth("run", "--debug", "--config", str(write_config(config)))
        assert result.returncode == 0, result.stderr
        return result.stderr

    run("onnx-cpu", "cpu")
    first = run("qnn", "qnn1", device="snapdragon-x-elite", precision="fp16")
    assert "context binary written" in first
    (binary,) = (tmp_path / "cache" / "exports").glob("*/qnn-soc60-v73-fp16_ctx_qnn.bin")
    stamp = binary.stat().st_mtime_ns
    second = run("qnn", "qnn2", device="snapdragon-x-elite", precision="fp16")
    assert "loaded context binary" in second
    assert binary.stat().st_mtime_ns == stamp
    for index in range(2):
        cpu = np.load(tmp_path / "cpu" / f"{index:06d}.npy")
        for out in ("qnn1", "qnn2"):
            htp = np.load(tmp_path / out / f"{index:06d}.npy")
            assert np.abs(htp - cpu).max() / np.abs(cpu).max() < 1e-2
            assert not np.array_equal(htp, cpu)  # fp16 on the HTP, not a CPU fallback
