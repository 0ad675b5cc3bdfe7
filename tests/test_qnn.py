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


@pytest.mark.slow  # ~13 s: two emulator compiles
def test_qnn_compiles_a_graph_per_photo_size(tmp_path, write_config):
    """Keep-aspect on photos of two sizes: each is run on the HTP at its own size (a second
    compile, said in the log), and agrees with the CPU."""
    from PIL import Image

    checkpoint = tmp_path / "tiny-relative-hf"
    save_hf(checkpoint, "relative", TINY, seed=2)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    sizes = {"a": (90, 160), "b": (150, 110)}
    for name, size in sizes.items():
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(image).save(photos / f"{name}.png")

    def run(runtime: str) -> tuple[str, list[np.ndarray]]:
        config = {
            "source": {"type": "images", "path": str(photos)},
            "preprocess": {"resize": {"policy": "keep-aspect", "lower_bound": 126}},
            "backend": {"type": "dav2-relative", "checkpoint": str(checkpoint), "runtime": runtime},
            "sinks": [{"type": "npy", "dir": runtime}],
            "runtime": {"cache_dir": "cache"},
        }
        result = run_edgedepth("run", "--config", str(write_config(config)))
        assert result.returncode == 0, result.stderr
        return result.stderr, [np.load(tmp_path / runtime / f"{i:06d}.npy") for i in range(2)]

    _, cpu = run("onnx-cpu")
    log, htp = run("qnn")
    assert "new input size 168×126" in log and "QNN compile" in log
    assert log.count("context binary written") == 2
    for size, on_cpu, on_htp in zip(sizes.values(), cpu, htp, strict=True):
        assert on_htp.shape == on_cpu.shape == size
        assert np.abs(on_htp - on_cpu).max() / np.abs(on_cpu).max() < 1e-2
