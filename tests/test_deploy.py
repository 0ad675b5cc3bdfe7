"""`edgedepth deploy`: export with in-graph pre/post processing, local QNN compile + verify on
the HTP emulator, QDQ quantisation, and the artifact running where torch is not installed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import yaml
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from edgedepth.models.dav2 import checkpoint as ckpt  # noqa: E402
from edgedepth.models.dav2.export import DepthGraph  # noqa: E402
from edgedepth.models.dav2.graph import GraphOptions  # noqa: E402
from edgedepth.runtime.file_identity import file_sha256  # noqa: E402
from tests.conftest import ON_WINDOWS, POSIX_VENV, blocked_modules, run_edgedepth  # noqa: E402
from tests.dav2_fixtures import TINY, save_hf  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GRAPH = {"resize_to": [126, 126], "output_size": "input", "invert": True}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt") / "tiny-relative-hf"
    save_hf(folder, "relative", TINY)
    return folder


def write_lpcvc_config(folder: Path, checkpoint: Path) -> Path:
    """The LPCVC layout at test scale: 240×320 frames in, 126×126 inside, 240×320 out."""
    path = folder / "lpcvc.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "source": {"type": "synthetic", "frames": 4, "width": 320, "height": 240},
                "preprocess": {"resize": {"policy": "none"}},
                "backend": {"type": "dav2-relative", "checkpoint": str(checkpoint), "graph": GRAPH},
                "sinks": [{"type": "npy", "dir": "out"}],
                "runtime": {"cache_dir": "cache"},
            }
        )
    )
    return path


@pytest.fixture
def lpcvc_config(tmp_path, tiny_checkpoint) -> Path:
    return write_lpcvc_config(tmp_path, tiny_checkpoint)


@pytest.fixture(scope="module")
def lpcvc_module_config(tmp_path_factory, tiny_checkpoint) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("compiled")
    return root, write_lpcvc_config(root, tiny_checkpoint)


def test_export_matches_torch_and_writes_a_complete_manifest(
    tmp_path, lpcvc_config, tiny_checkpoint
):
    result = run_edgedepth(
        "deploy", "export", "--config", str(lpcvc_config), "--out", "exp", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    import onnx

    onnx.checker.check_model(str(tmp_path / "exp" / "model.onnx"))
    manifest = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    assert manifest["inputs"][0] | {"range": None} == {
        "name": "image",
        "shape": [1, 3, 240, 320],
        "dtype": "float32",
        "layout": "NCHW RGB",
        "range": None,
    }
    assert manifest["inputs"][0]["range"] == [0, 255]
    assert manifest["outputs"][0]["shape"] == [1, 1, 240, 320]
    assert manifest["outputs"][0]["range"] == [0.0, 1.0]
    assert manifest["depth_kind"] == "relative-depth"
    assert manifest["weights_sha256"] == file_sha256(tiny_checkpoint)
    assert manifest["backend"] == "dav2-relative"
    assert manifest["graph"]["resize_to"] == [126, 126] and manifest["graph"]["invert"] is True
    assert {"torch", "onnxruntime", "edgedepth", "onnx"} <= manifest["tools"].keys()
    assert manifest["model"]["encoder"] == "custom" and manifest["model"]["depth"] == 4

    image = np.random.default_rng(3).integers(0, 256, (1, 3, 240, 320)).astype(np.float32)
    session = onnxruntime.InferenceSession(tmp_path / "exp" / "model.onnx")
    (exported,) = session.run(None, {"image": image})
    state, info = ckpt.read_checkpoint(tiny_checkpoint)
    model = ckpt.load_model(state, ckpt.infer_config(state, info), tiny_checkpoint)
    with torch.no_grad():
        eager = DepthGraph(model, GraphOptions(**GRAPH), (240, 320))(torch.from_numpy(image))
    error = np.abs(exported - eager.numpy()).max() / np.abs(eager.numpy()).max()
    assert error < 1e-4


def test_export_of_a_non_dav2_backend_is_a_clear_error(tmp_path, write_config):
    config = write_config(
        {
            "plugins": [str(REPO / "tests" / "plugins" / "sleepy.py")],
            "source": {"type": "synthetic", "frames": 1},
            "backend": {"type": "sleepy"},
        }
    )
    result = run_edgedepth(
        "deploy", "export", "--config", str(config), "--out", str(tmp_path / "x")
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "backend.type: deploy builds the ONNX graphs of backends that run them" in result.stderr
    assert "'sleepy'" in result.stderr


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, lpcvc_module_config):
    """`deploy compile --local` of the LPCVC graph on the emulator, once for this module."""
    root, config = lpcvc_module_config
    result = run_edgedepth(
        "deploy", "compile", "--config", str(config), "--out", "ctx", "--local",
        "--soc", "snapdragon-x-elite", "--precision", "fp16", "--samples", "2", cwd=root,
    )  # fmt: skip
    return root, result


RUN_CONTEXT_MODEL = (
    "source: {type: images, path: frames}\n"
    "preprocess: {resize: {policy: none}}\n"
    "backend: {type: dav2-relative, model: ctx, runtime: qnn}\n"
    "sinks: [{type: npy, dir: out_ctx, existing: clear}]\n"
)
#: fp16 on the HTP against float32 on the CPU (max |Δ| / max |float|): 0.3 % measured.
COMPILED_BOUND = 0.02


def write_frames(root: Path) -> None:
    """Two 240×320 photos for the compiled model, in ``root/frames``."""
    (root / "frames").mkdir(exist_ok=True)
    for index, seed in enumerate((5, 6)):
        Image.fromarray(random_photo(240, 320, seed)).save(root / "frames" / f"{index}.png")


def random_photo(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth colour gradients with noise: the min-max-normalised output has structure."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(6 * x + s) * np.cos(4 * y - 2 * s) for s in (0.0, 1.0, 2.0)], axis=-1)
    return np.clip(127 + 100 * base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


def check_context_run(root: Path, run: subprocess.CompletedProcess[str]) -> None:
    """The compiled model's depth, as `edgedepth run` wrote it, against the float export
    (``ctx/model.onnx``) run here with ONNX Runtime on the CPU on the same frames."""
    assert run.returncode == 0, run.stderr
    assert "loaded context binary" in run.stderr
    reference = onnxruntime.InferenceSession(root / "ctx" / "model.onnx")
    for index in range(2):
        frame = np.asarray(Image.open(root / "frames" / f"{index}.png"))
        tensor = frame.transpose(2, 0, 1)[None].astype(np.float32)
        (expected,) = reference.run(None, {"image": tensor})
        expected = expected[0, 0]
        depth = np.load(root / "out_ctx" / f"{index:06d}.npy")
        assert depth.shape == expected.shape == (240, 320)
        assert expected.std() > 0.05  # the float model's depth has structure
        error = np.abs(depth - expected).max() / np.abs(expected).max()
        assert error < COMPILED_BOUND, (index, error)


@pytest.mark.qnn
@pytest.mark.slow  # ~35 s: a ViT compile for the HTP and its verification
@pytest.mark.xdist_group("compiled")  # one worker builds the module's compiled fixture
def test_local_compile_verify_and_run_without_torch(compiled):
    root, result = compiled
    assert result.returncode == 0, result.stderr
    assert "verify, HTP vs CPU float: relative error" in result.stdout
    manifest = json.loads((root / "ctx" / "manifest.json").read_text())
    assert manifest["run_model"] == "model_ctx.onnx"
    assert (manifest["qnn"]["soc_model"], manifest["qnn"]["htp_arch"]) == (60, 73)
    assert (root / "ctx" / manifest["qnn"]["context_binary"]).stat().st_size > 0
    verify = manifest["verify"]
    assert verify["frames"] == 2 and verify["finite"]
    assert 0 < verify["relative_error"] < 1e-2 and verify["delta1_agreement"] > 0.99

    # The artifact runs where torch and OpenCV cannot be imported (and is never asked for them).
    (root / "run.yaml").write_text(RUN_CONTEXT_MODEL)
    write_frames(root)
    blocker = root / "blocker"
    env = blocked_modules(blocker, "torch", "cv2", "transformers", "scipy")
    check_context_run(root, run_edgedepth("run", "--config", "run.yaml", cwd=root, env=env))
    assert not (blocker / "attempts").exists(), (blocker / "attempts").read_text()


@pytest.mark.qnn
@pytest.mark.slow
@pytest.mark.xdist_group("compiled")
@pytest.mark.skipif(ON_WINDOWS, reason=POSIX_VENV)
def test_the_runtime_installs_and_runs_in_a_fresh_venv(compiled):
    """What a Windows-on-Arm user installs: `pip install .[qnn]` alone (no torch, no OpenCV)."""
    root, result = compiled
    assert result.returncode == 0, result.stderr
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{REPO}[qnn]"], capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr[-2000:]
    probe = subprocess.run([str(python), "-c", "import torch"], capture_output=True)
    assert probe.returncode != 0  # really without torch
    (root / "run.yaml").write_text(RUN_CONTEXT_MODEL)
    write_frames(root)
    run = subprocess.run(
        [str(venv / "bin" / "edgedepth"), "run", "--config", "run.yaml"],
        capture_output=True, text=True, cwd=root, timeout=300,
    )  # fmt: skip
    check_context_run(root, run)


@pytest.mark.qnn
@pytest.mark.slow  # ~12 s: calibration, QDQ and an emulator run
def test_quantize_with_synthetic_calibration_runs_on_the_emulator(tmp_path, lpcvc_config):
    result = run_edgedepth(
        "deploy", "quantize", "--config", str(lpcvc_config), "--calibration", "synthetic:4",
        "--out", "q", "--scheme", "w8a16", cwd=tmp_path, env={"EDGEDEPTH_PROGRESS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "CPU, quantised vs float: relative error" in result.stdout
    assert re.search(r"calibrating: +\d+%\|.*\| \d/4 \[", result.stderr)  # frames, with an ETA
    manifest = json.loads((tmp_path / "q" / "manifest.json").read_text())
    quantization = manifest["quantization"]
    assert quantization["scheme"] == "w8a16" and quantization["calibration_frames"] == 4
    accuracy = quantization["cpu_accuracy_vs_float"]
    print("CPU, quantised vs float:", accuracy)
    # w8a16 on a 4-block random model: well under a percent, every pixel within δ1.
    assert 0 < accuracy["relative_error"] < 0.02 and accuracy["delta1_agreement"] > 0.99
    import onnx

    ops = {node.op_type for node in onnx.load(str(tmp_path / "q" / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops

    compiled = run_edgedepth(
        "deploy", "compile", "--config", str(lpcvc_config), "--out", "qctx", "--local",
        "--precision", "quantized", "--model", "q", "--samples", "2", cwd=tmp_path,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stderr
    print(compiled.stdout)
    verify = json.loads((tmp_path / "qctx" / "manifest.json").read_text())["verify"]
    assert 0 < verify["relative_error"] < 0.02 and verify["delta1_agreement"] > 0.99
