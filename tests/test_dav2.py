"""DepthAnythingV2: official/HF checkpoint layouts, parity with transformers, the exported graph,
the backends through `edgedepth run`, and the errors for bad checkpoints."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("transformers")

from edgedepth.api.stages import BuildContext  # noqa: E402
from edgedepth.engine.registry import load_registry  # noqa: E402
from edgedepth.models.dav2 import checkpoint as ckpt  # noqa: E402
from edgedepth.models.dav2 import weights  # noqa: E402
from edgedepth.models.dav2.export import DepthGraph, export_graph  # noqa: E402
from edgedepth.models.dav2.graph import GraphOptions  # noqa: E402
from edgedepth.models.dav2.network import DepthAnythingV2, config_for, interpolate_pos_embed  # noqa: E402
from edgedepth.runtime.accuracy import compare_depth  # noqa: E402
from edgedepth.runtime.exports import cached_export  # noqa: E402
from edgedepth.runtime.int8 import int8_report  # noqa: E402
from tests.conftest import offline_hub, run_edgedepth, synthetic_config  # noqa: E402
from tests.dav2_fixtures import TINY, hf_model, save_hf, save_official_pth  # noqa: E402

# From DAV2.md (the official release's state dict).
OFFICIAL_VITS_SHAPES = {
    "pretrained.blocks.0.attn.qkv.weight": (1152, 384),
    "pretrained.blocks.0.ls1.gamma": (384,),
    "pretrained.pos_embed": (1, 1370, 384),
    "depth_head.projects.0.weight": (48, 384, 1, 1),
    "depth_head.resize_layers.3.weight": (384, 384, 3, 3),
    "depth_head.scratch.output_conv2.2.weight": (1, 32, 1, 1),
}


def rel_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def transformers_pixels(image: np.ndarray) -> torch.Tensor:
    """What transformers' own DepthAnything image processor (DPT's, with the ImageNet mean and
    std of the published DepthAnythingV2 preprocessor_config.json, from transformers' constants)
    makes of an RGB uint8 image, without resizing: the reference for our normalisation."""
    from transformers import DPTImageProcessorPil
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    processor = DPTImageProcessorPil(
        do_resize=False,
        do_pad=False,
        image_mean=IMAGENET_DEFAULT_MEAN,
        image_std=IMAGENET_DEFAULT_STD,
    )
    return processor(images=image, return_tensors="pt")["pixel_values"]


@pytest.fixture(scope="module")
def hf_tiny(tmp_path_factory):
    """Tiny random transformers models (relative and metric) saved with save_pretrained: the
    ViT-S structure is held against the official code in test_official_dav2.py."""
    root = tmp_path_factory.mktemp("hf")
    models = {}
    for kind in ("relative", "metric"):
        folder = root / f"tiny-{kind}-hf"
        models[kind] = (save_hf(folder, kind, TINY, seed=1), folder)
    return models


def backend(options: dict, kind: str, size: tuple[int, int], cache: Path):
    context = BuildContext(None, "file", cache, input_size=size)
    return load_registry().build("backends", f"dav2-{kind}", options, context)


# --- layout -------------------------------------------------------------------------------------


def test_state_dict_matches_the_official_layout():
    state = DepthAnythingV2(config_for("vits")).state_dict()
    assert len(state) == 239
    for key, shape in OFFICIAL_VITS_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert len(DepthAnythingV2(config_for("vitl")).state_dict()) == 12 * 14 + 239


def test_official_pth_loads_strictly_and_infers_the_variant(tmp_path):
    path = tmp_path / "depth_anything_v2_metric_hypersim_vits.pth"
    reference = save_official_pth(path, kind="metric")
    state, info = ckpt.read_checkpoint(path)
    assert (info.kind, info.max_depth) == ("metric", 20.0)  # from the official file name
    config = ckpt.infer_config(state, info)
    assert config.encoder == "vits"
    from dataclasses import replace

    model = ckpt.load_model(state, replace(config, kind="metric", max_depth=20.0), path)
    image = torch.randn(1, 3, 126, 126)
    with torch.no_grad():
        assert torch.equal(model(image), reference(image))


def test_hf_layout_round_trips_losslessly(tmp_path):
    model = hf_model("relative", TINY)
    hf_state = model.state_dict()
    # transformers 5 names the projections q/k/v/o_proj in memory, the hub files query/key/value.
    official = ckpt.hf_to_official(hf_state)
    assert all(key.startswith(("pretrained.", "depth_head.")) for key in official)
    back = ckpt.official_to_hf(official)
    model.save_pretrained(tmp_path / "hf")
    from safetensors.torch import load_file

    on_disk = load_file(tmp_path / "hf" / "model.safetensors")
    assert set(back) == set(on_disk)
    assert all(torch.equal(back[key], on_disk[key]) for key in on_disk)


def test_position_embedding_interpolation_follows_dinov2():
    """Bicubic with the +0.1 offset (transformers interpolates to the size: different)."""
    pos_embed = torch.randn(1, 1 + 37 * 37, 8)
    assert interpolate_pos_embed(pos_embed, 37, 37) is pos_embed
    ours = interpolate_pos_embed(pos_embed, 25, 24)
    grid = pos_embed[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    offset = torch.nn.functional.interpolate(
        grid, scale_factor=(25.1 / 37, 24.1 / 37), mode="bicubic", antialias=False
    )
    by_size = torch.nn.functional.interpolate(grid, size=(25, 24), mode="bicubic")
    assert torch.allclose(ours[:, 1:], offset.permute(0, 2, 3, 1).reshape(1, -1, 8))
    assert not torch.allclose(ours[:, 1:], by_size.permute(0, 2, 3, 1).reshape(1, -1, 8))


# --- parity with transformers at the native size (its position embedding is the official one) ---


@pytest.mark.parametrize("kind", ["relative", "metric"])
@pytest.mark.parametrize("runtime", ["torch", "onnx-cpu"])
def test_parity_with_transformers(hf_tiny, kind, runtime, tmp_path_factory):
    """Our backend on a saved transformers model equals transformers' forward on what its own
    image processor makes of the image (so our normalisation is judged too)."""
    model, folder = hf_tiny[kind]
    image = random_image(126, 126)
    with torch.no_grad():
        expected = model(pixel_values=transformers_pixels(image))
    expected = expected.predicted_depth[0].numpy()
    cache = tmp_path_factory.getbasetemp() / "parity-cache"
    ours = backend({"checkpoint": str(folder), "runtime": runtime}, kind, (126, 126), cache)
    depth = ours.infer(image)
    assert depth.shape == (126, 126)
    assert float(expected.std()) > 1e-3  # the random model carries signal
    assert rel_error(depth, expected) < 1e-4


# --- the exported graph ------------------------------------------------------------------------


class InMemoryGraphs:
    """A torch model in memory as a graph builder: the export cache, as the backend uses it."""

    def __init__(self, model: DepthAnythingV2, options: GraphOptions) -> None:
        self.model, self.options = model, options

    def graph_key(self, htp: bool) -> dict:
        return {"name": "test", "seed": 0, "graph": self.options.model_dump(mode="json")}

    def export(self, size, path, htp):
        return export_graph(self.model, self.options, size, path, "random-seed0")


def export(model: DepthAnythingV2, options: GraphOptions, size, cache: Path) -> Path:
    folder, _ = cached_export(InMemoryGraphs(model, options), size, False, cache)
    return folder


def test_lpcvc_graph_matches_torch_and_has_no_cubic_resize(tmp_path):
    """480×640 in, 350×350 inside, inverted, 480×640 out; the interpolated position embedding is
    a constant (QNN rejects cubic Resize)."""
    model = ckpt.random_model(config_for("vits"))
    options = GraphOptions(resize_to=(350, 350), output_size="input", invert=True)
    folder = export(model, options, (480, 640), tmp_path)
    graph = onnx.load(folder / "model.onnx")
    onnx.checker.check_model(graph)
    modes = [
        attr.s.decode()
        for node in graph.graph.node
        if node.op_type == "Resize"
        for attr in node.attribute
        if attr.name == "mode"
    ]
    assert modes and "cubic" not in modes
    assert [d.dim_value for d in graph.graph.output[0].type.tensor_type.shape.dim] == [
        1,
        1,
        480,
        640,
    ]
    image = random_image(480, 640)
    import onnxruntime

    session = onnxruntime.InferenceSession(folder / "model.onnx")
    tensor = image.transpose(2, 0, 1)[None].astype(np.float32)
    (exported,) = session.run(None, {"image": tensor})
    with torch.no_grad():
        eager = DepthGraph(ckpt.random_model(config_for("vits")), options, (480, 640))
        eager.model.pretrained.fixed_pos_embed = None  # the dynamic bicubic path
        reference = eager(torch.from_numpy(tensor)).numpy()
    assert exported.shape == (1, 1, 480, 640)
    assert exported.min() >= 0.0 and exported.max() <= 1.0
    assert rel_error(exported, reference) < 1e-4


def test_export_is_cached(tmp_path, caplog):
    model = ckpt.random_model(config_for("vits"))
    first = export(model, GraphOptions(), (126, 126), tmp_path)
    stamp = os.stat(first / "model.onnx").st_mtime_ns
    with caplog.at_level("INFO", logger="edgedepth"):
        second = export(model, GraphOptions(), (126, 126), tmp_path)
    assert second == first and os.stat(second / "model.onnx").st_mtime_ns == stamp
    assert "using cached export" in caplog.text
    other = export(model, GraphOptions(invert=True), (126, 126), tmp_path)
    assert other != first


# --- end to end through the CLI ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny") / "tiny-relative-hf"
    save_hf(folder, "relative", TINY)
    return folder


@pytest.mark.parametrize("runtime", ["onnx-cpu", "torch"])
def test_run_synthetic_to_npy(tmp_path, write_config, tiny_hf, runtime):
    config = synthetic_config(
        tmp_path,
        plugins=[],
        source={"type": "synthetic", "frames": 3, "width": 640, "height": 480},
        preprocess={"resize": {"policy": "fixed", "width": 126, "height": 126}},
        backend={"type": "dav2-relative", "checkpoint": str(tiny_hf), "runtime": runtime},
        runtime={"cache_dir": "cache"},
    )
    result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "out").glob("*.npy"))
    assert len(files) == 3
    for file in files:
        depth = np.load(file)
        assert depth.shape == (480, 640) and depth.dtype == np.float32
        assert np.isfinite(depth).all() and depth.std() > 0


def tiny_cpu_config(tmp_path: Path, checkpoint: Path, frames: int) -> dict:
    """A run of the tiny checkpoint on onnx-cpu (126², synthetic frames, npy sink ``out``)."""
    return synthetic_config(
        tmp_path,
        plugins=[],
        source={"type": "synthetic", "frames": frames, "width": 160, "height": 120},
        preprocess={"resize": {"policy": "fixed", "width": 126, "height": 126}},
        backend={"type": "dav2-relative", "checkpoint": str(checkpoint), "runtime": "onnx-cpu"},
        runtime={"cache_dir": "cache"},
    )


def no_torch(tmp_path: Path) -> dict[str, str]:
    """The environment of a run where ``import torch`` fails."""
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "torch.py").write_text("raise ImportError('torch is not installed here')\n")
    return {"PYTHONPATH": str(blocker)}


def test_ready_onnx_model_runs_without_torch(tmp_path, write_config, tiny_hf):
    """The Windows-on-Arm path: `backend.model` needs neither torch nor the exporter."""
    config = tiny_cpu_config(tmp_path, tiny_hf, frames=2)
    assert run_edgedepth("run", "--config", str(write_config(config))).returncode == 0
    (export,) = (tmp_path / "cache" / "exports").iterdir()
    config["backend"] = {"type": "dav2-relative", "model": str(export), "runtime": "onnx-cpu"}
    config["sinks"] = [{"type": "npy", "dir": "out2"}]
    result = run_edgedepth("run", "--config", str(write_config(config)), env=no_torch(tmp_path))
    assert result.returncode == 0, result.stderr
    for index in range(2):
        assert np.allclose(
            np.load(tmp_path / "out2" / f"{index:06d}.npy"),
            np.load(tmp_path / "out" / f"{index:06d}.npy"),
        )


def test_a_cached_export_starts_without_torch_or_reading_the_checkpoint(
    tmp_path, write_config, tiny_hf
):
    """Fast start: once exported, a run finds the export by the checkpoint's remembered sha256
    (path, size, modification time), without torch; a changed file is hashed again."""
    checkpoint = tmp_path / "tiny-hf"
    shutil.copytree(tiny_hf, checkpoint)
    config = tiny_cpu_config(tmp_path, checkpoint, frames=2)
    assert run_edgedepth("run", "--config", str(write_config(config))).returncode == 0
    without_torch = no_torch(tmp_path)
    config["sinks"] = [{"type": "npy", "dir": "out2"}]
    result = run_edgedepth("run", "--config", str(write_config(config)), env=without_torch)
    assert result.returncode == 0, result.stderr
    assert "cached export" in result.stderr
    np.testing.assert_array_equal(
        np.load(tmp_path / "out2" / "000001.npy"), np.load(tmp_path / "out" / "000001.npy")
    )
    # Same size and time, other bytes: not read again (the remembered sha256 is used).
    weights = checkpoint / "model.safetensors"
    stamp = weights.stat()
    weights.write_bytes(bytes(stamp.st_size))
    os.utime(weights, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    config["sinks"] = [{"type": "npy", "dir": "out3", "existing": "clear"}]
    result = run_edgedepth("run", "--config", str(write_config(config)), env=without_torch)
    assert result.returncode == 0, result.stderr
    # A new modification time: hashed again, another model, so it must be exported (torch).
    os.utime(weights, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    result = run_edgedepth("run", "--config", str(write_config(config)), env=without_torch)
    assert result.returncode != 0
    assert "needs PyTorch" in result.stderr


def test_int8_on_the_cpu_is_close_to_float_and_cached(tmp_path, write_config, tiny_hf):
    """precision int8: a quantised copy of the export (int8 MatMuls, checked against float on
    synthetic frames when made), made once beside it; on the run's frames its depth keeps the
    bound the README states (δ1 ≥ 0.99, relative error ≤ 2 % against float)."""
    config = tiny_cpu_config(tmp_path, tiny_hf, frames=3)
    assert run_edgedepth("run", "--config", str(write_config(config))).returncode == 0
    config["backend"]["precision"] = "int8"
    config["sinks"] = [{"type": "npy", "dir": "int8", "existing": "overwrite"}]
    result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode == 0, result.stderr
    assert "int8 MatMul against float on 4 synthetic frames" in result.stderr
    (export,) = (tmp_path / "cache" / "exports").iterdir()
    (quantised,) = export.glob("model.int8-*.onnx")
    ops = {node.op_type for node in onnx.load(quantised).graph.node}
    assert "DynamicQuantizeLinear" in ops and "MatMulInteger" in ops and "MatMul" not in ops
    assert int8_report(quantised)["int8"] in ("MatMul+Conv", "MatMul")
    stamp = quantised.stat().st_mtime_ns
    reference = [np.load(tmp_path / "out" / f"{index:06d}.npy") for index in range(3)]
    int8_depth = [np.load(tmp_path / "int8" / f"{index:06d}.npy") for index in range(3)]
    numbers = compare_depth(int8_depth, reference)
    assert 0 < numbers["relative_error"] <= 0.02 and numbers["delta1_agreement"] >= 0.99, numbers
    # The README's comparison command says the same.
    compared = subprocess.run(
        [sys.executable, "-m", "edgedepth.runtime.accuracy", "out", "int8"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"δ1 agreement {100 * numbers['delta1_agreement']:.2f}% over 3 frames" in compared.stdout
    result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode == 0 and "quantising" not in result.stderr
    assert quantised.stat().st_mtime_ns == stamp  # reused, not made again


def test_int8_is_for_the_cpu(tmp_path, write_config, tiny_hf):
    backend = {"type": "dav2-relative", "checkpoint": str(tiny_hf), "runtime": "torch"}
    result = run_with_backend(tmp_path, write_config, {**backend, "precision": "int8"})
    assert result.returncode == 2
    assert "precision int8 is for runtime onnx-cpu, not torch" in result.stderr


# --- bad input -----------------------------------------------------------------------------------


def run_with_backend(tmp_path, write_config, backend_section, size=126, env=None):
    config = synthetic_config(
        tmp_path,
        plugins=[],
        source={"type": "synthetic", "frames": 1, "width": 160, "height": 120},
        preprocess={"resize": {"policy": "fixed", "width": size, "height": size}},
        backend=backend_section,
        runtime={"cache_dir": "cache"},
    )
    return run_edgedepth("run", "--config", str(write_config(config)), env=env)


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    for fragment in fragments:
        assert fragment in line, line


def test_checkpoint_of_another_encoder_lists_mismatched_keys(tmp_path, write_config):
    path = tmp_path / "depth_anything_v2_vits.pth"
    save_official_pth(path)
    result = run_with_backend(
        tmp_path,
        write_config,
        {"type": "dav2-relative", "checkpoint": str(path), "encoder": "vitb"},
    )
    assert_one_line_error(result, "does not fit DepthAnythingV2 vitb", "pretrained.cls_token")


def test_metric_checkpoint_for_relative_backend(tmp_path, write_config):
    path = tmp_path / "depth_anything_v2_metric_vkitti_vits.pth"
    save_official_pth(path, kind="metric")
    result = run_with_backend(
        tmp_path, write_config, {"type": "dav2-relative", "checkpoint": str(path)}
    )
    assert_one_line_error(result, "is a metric checkpoint", "dav2-metric")


def test_truncated_checkpoint(tmp_path, write_config):
    path = tmp_path / "depth_anything_v2_vits.pth"
    save_official_pth(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    result = run_with_backend(
        tmp_path, write_config, {"type": "dav2-relative", "checkpoint": str(path)}
    )
    assert_one_line_error(result, str(path), "truncated")


def test_random_bytes_are_never_read_as_a_checkpoint(tmp_path):
    """torch's unpickler fails on other bytes in several ways (IndexError, UnicodeDecodeError,
    UnpicklingError, …): each is the same one-line CheckpointError naming the file."""
    import random

    path = tmp_path / "r.pth"
    for seed in range(120):
        path.write_bytes(random.Random(seed).randbytes(4096))
        with pytest.raises(ckpt.CheckpointError, match=r"r\.pth.*not a PyTorch checkpoint"):
            ckpt.read_checkpoint(path)


class Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_with_code_is_refused(tmp_path, write_config):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"pretrained.cls_token": torch.zeros(1), "x": Payload()}, handle)
    result = run_with_backend(
        tmp_path, write_config, {"type": "dav2-relative", "checkpoint": str(path)}
    )
    assert_one_line_error(result, "refused", str(path))
    assert not (tmp_path / "PWNED").exists()


def test_missing_official_checkpoint_offline(tmp_path, write_config, monkeypatch):
    """No network (on any machine: the download address refuses): one line naming the file,
    where to get it and where to put it."""
    offline = offline_hub()
    result = run_with_backend(
        tmp_path,
        write_config,
        {"type": "dav2-metric", "encoder": "vits", "dataset": "vkitti"},
        env=offline,
    )
    path = "depth-anything/Depth-Anything-V2-Metric-VKITTI-Small/resolve/main"
    assert_one_line_error(
        result,
        "depth_anything_v2_metric_vkitti_vits.pth",
        f"{offline['HF_ENDPOINT']}/{path}/depth_anything_v2_metric_vkitti_vits.pth",
        str(tmp_path / "cache" / "checkpoints"),
    )
    monkeypatch.delenv("HF_ENDPOINT")  # without a mirror: Hugging Face itself
    assert weights.official_url("metric", "vits", "vkitti") == (
        f"https://huggingface.co/{path}/depth_anything_v2_metric_vkitti_vits.pth"
    )


def test_size_not_multiple_of_14(tmp_path, write_config, tiny_hf):
    result = run_with_backend(
        tmp_path, write_config, {"type": "dav2-relative", "checkpoint": str(tiny_hf)}, size=128
    )
    assert_one_line_error(result, "128×128", "multiple of 14")


def test_unknown_qnn_option_is_rejected(tmp_path, write_config, tiny_hf):
    section = {
        "type": "dav2-relative",
        "checkpoint": str(tiny_hf),
        "runtime": "qnn",
        "qnn": {"provider_options": {"htp_perf_mode": "burst"}},
    }
    result = run_with_backend(tmp_path, write_config, section)
    assert_one_line_error(
        result, "backend.qnn.provider_options: htp_perf_mode", "not a QNN EP option"
    )
    assert result.returncode == 2  # a config error, found before anything runs


def test_qnn_requested_without_the_execution_provider(tmp_path, write_config, tiny_hf):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "onnxruntime_qnn.py").write_text("raise ImportError('not installed')\n")
    section = {"type": "dav2-relative", "checkpoint": str(tiny_hf), "runtime": "qnn"}
    result = run_with_backend(tmp_path, write_config, section, env={"PYTHONPATH": str(blocker)})
    assert_one_line_error(result, "pip install 'edgedepth[qnn]'")


def test_per_head_attention_is_the_same_function(tmp_path):
    """The LPCVC latency lever: the exported per-head graph computes what the fused one does."""
    image = torch.from_numpy(random_image(126, 126).transpose(2, 0, 1)[None].astype(np.float32))
    fused = DepthGraph(ckpt.random_model(config_for("vits")), GraphOptions(), (126, 126))
    split = DepthGraph(
        ckpt.random_model(config_for("vits")), GraphOptions(attention="per-head"), (126, 126)
    )
    assert sum(1 for name, _ in split.named_modules() if name.endswith("queries.5")) == 12
    with torch.no_grad():
        reference = fused(image).numpy()
        assert rel_error(split(image).numpy(), reference) < 1e-5
    model = ckpt.random_model(config_for("vits"))
    options = GraphOptions(attention="per-head")
    folder = export(model, options, (126, 126), tmp_path)
    import onnxruntime

    session = onnxruntime.InferenceSession(folder / "model.onnx")
    (exported,) = session.run(None, {"image": image.numpy()})
    assert rel_error(exported, reference) < 1e-4


# --- what a checkpoint says about itself ---------------------------------------------------------


def test_hf_out_indices_are_followed_for_a_known_encoder(tmp_path):
    """A ViT-S-shaped Hugging Face model whose config taps blocks 3, 6, 9, 11 (out_indices
    4, 7, 10, 12) instead of the official 2, 5, 8, 11: the head must be fed what the config says.
    Compared with transformers' own forward at 518 (where its position embedding equals the
    official one)."""
    folder = tmp_path / "custom-taps-hf"
    model = save_hf(folder, "relative", seed=4, out_indices=[4, 7, 10, 12])
    state, info = ckpt.read_checkpoint(folder)
    config = ckpt.infer_config(state, info)
    assert (config.encoder, config.tapped_blocks) == ("vits", (3, 6, 9, 11))
    image = random_image(518, 518, seed=5)
    with torch.no_grad():
        expected = model(pixel_values=transformers_pixels(image))
    expected = expected.predicted_depth[0].numpy()
    ours = backend(
        {"checkpoint": str(folder), "runtime": "torch"}, "relative", (518, 518), tmp_path
    )
    assert rel_error(ours.infer(image.astype(np.float32)), expected) < 1e-4


def test_renamed_checkpoint_follows_the_backend_type_with_a_warning(tmp_path, caplog):
    """Relative and metric heads have the same weights: a renamed official file does not say
    which it is, so the backend type decides, and the user is told."""
    path = tmp_path / "my_weights.pth"
    save_official_pth(path, kind="metric", seed=6)
    state = torch.load(path, weights_only=True)
    image = random_image(126, 126, seed=7)
    tensor = transformers_pixels(image)
    for kind in ("metric", "relative"):
        reference = DepthAnythingV2(config_for("vits", kind, 20.0))
        reference.load_state_dict(state)
        with torch.no_grad():
            expected = reference.eval()(tensor)[0, 0].numpy()
        caplog.clear()
        with caplog.at_level("WARNING", logger="edgedepth"):
            ours = backend(
                {"checkpoint": str(path), "runtime": "torch"}, kind, (126, 126), tmp_path
            )
        (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert str(path) in warning and f"using dav2-{kind}" in warning
        assert rel_error(ours.infer(image.astype(np.float32)), expected) < 1e-5
