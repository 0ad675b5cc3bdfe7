"""The README's model-plugin example (examples/dpt_backend/edgedepth_dpt.py): transformers' DPT,
exported to ONNX here from a tiny random DPTForDepthEstimation, run through the generic ONNX
backend exactly as the README says (``plugins: [edgedepth_dpt.py]``, ``type: dpt``) on the CPU
(float and int8), on the QNN HTP emulator, and as the folder ``deploy compile --local`` and
``--aihub`` (the AI Hub fake) make. The reference is transformers' own forward on what its own
DPT image processor makes of each photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from edgedepth.media.imageops import read_rgb
from tests.conftest import NO_PROXY, blocked_modules, run_edgedepth
from tests.test_deploy_aihub import DEVICE

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "examples" / "dpt_backend" / "edgedepth_dpt.py"
#: Square photos (the ViT-only DPTs take square images), two sizes: two graphs on the HTP.
PHOTOS = {"a": 64, "b": 96}


@pytest.fixture(scope="module")
def dpt(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    """A tiny random DPT and its ONNX export with symbolic sizes (as the plugin's docstring
    exports dpt-large). Weights scaled so that the depth varies (DPT's own initialisation makes
    an output of about 1e-9)."""
    from transformers import DPTConfig, DPTForDepthEstimation

    torch.manual_seed(0)
    config = DPTConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
        image_size=64, patch_size=16, backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
    )  # fmt: skip
    model = DPTForDepthEstimation(config).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                fan_in = parameter[0].numel()
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / fan_in**0.5)
    path = tmp_path_factory.mktemp("dpt") / "dpt.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, 3, 64, 64),), str(path), input_names=["pixel_values"],
        output_names=["predicted_depth"], opset_version=17, dynamo=False,
        dynamic_axes={"pixel_values": {2: "height", 3: "width"},
                      "predicted_depth": {1: "height", 2: "width"}},
    )  # fmt: skip
    return model, path


def photos(folder: Path, sizes: dict[str, int]) -> Path:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, side in sizes.items():
        ramp = np.linspace(0, 255, side)[None, :, None] * np.ones((side, 1, 3))
        noise = rng.normal(0, 40, (side, side, 3))
        Image.fromarray(np.clip(ramp + noise, 0, 255).astype(np.uint8)).save(folder / f"{name}.png")
    return folder


def transformers_depth(model: torch.nn.Module, photo: Path) -> np.ndarray:
    """transformers' forward on what DPT's own image processor makes of the photo (no resize:
    the photos are the network's size)."""
    from transformers import DPTImageProcessor

    processor = DPTImageProcessor(do_resize=False, do_pad=False)
    pixels = processor(images=read_rgb(photo), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return model(pixel_values=pixels).predicted_depth[0].numpy()


def run_dpt(tmp_path: Path, folder: Path, model: Path | str, out: str, **backend) -> Path:
    """``edgedepth run`` as the README says, in a process where torch cannot be imported."""
    config = tmp_path / f"{out}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "plugins": [str(PLUGIN)],
                "source": {"type": "images", "path": str(folder)},
                "preprocess": {"resize": {"policy": "none"}},
                "backend": {"type": "dpt", "model": str(model), **backend},
                "sinks": [{"type": "npy", "dir": out}],
            }
        )
    )
    env = blocked_modules(tmp_path / "no-torch", "torch", "transformers")
    result = run_edgedepth("run", "--config", str(config), env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    return tmp_path / out


def worst_error(out: Path, model: torch.nn.Module, folder: Path) -> float:
    """max |Δ| / max |reference| over the photos, against transformers."""
    errors = []
    for index, photo in enumerate(sorted(folder.glob("*.png"))):
        reference = transformers_depth(model, photo)
        ours = np.load(out / f"{index:06d}.npy")
        assert ours.shape == reference.shape and float(reference.std()) > 1e-2
        errors.append(float(np.abs(ours - reference).max() / np.abs(reference).max()))
    return max(errors)


def test_dpt_on_the_cpu_equals_transformers(tmp_path, dpt):
    model, onnx_file = dpt
    folder = photos(tmp_path / "photos", PHOTOS)
    out = run_dpt(tmp_path, folder, onnx_file, "cpu", runtime="onnx-cpu")
    assert worst_error(out, model, folder) <= 1e-4
    assert not (tmp_path / "no-torch" / "attempts").exists()  # the plugin never needed torch


def test_dpt_int8_is_close_to_float(tmp_path, dpt):
    _, onnx_file = dpt
    folder = photos(tmp_path / "photos", PHOTOS)
    float_out = run_dpt(tmp_path, folder, onnx_file, "float", runtime="onnx-cpu")
    int8_out = run_dpt(tmp_path, folder, onnx_file, "int8", runtime="onnx-cpu", precision="int8")
    for index in range(len(PHOTOS)):
        reference, quantised = (np.load(o / f"{index:06d}.npy") for o in (float_out, int8_out))
        assert not np.array_equal(quantised, reference)  # it did run another graph
        # A 32-wide random model is a hard case for int8 (measured: 4–9 % relative error,
        # correlation 0.998 with float); ViT-S's numbers are in bench/RESULTS.md.
        relative = np.linalg.norm(quantised - reference) / np.linalg.norm(reference)
        assert relative < 0.15, relative
        assert np.corrcoef(quantised.ravel(), reference.ravel())[0, 1] > 0.99


@pytest.mark.qnn
def test_dpt_on_the_htp_emulator(tmp_path, dpt):
    model, onnx_file = dpt
    folder = photos(tmp_path / "photos", PHOTOS)
    out = run_dpt(tmp_path, folder, onnx_file, "htp", runtime="qnn")
    assert worst_error(out, model, folder) <= 2e-2


def deploy_config(tmp_path: Path, folder: Path, onnx_file: Path) -> Path:
    config = tmp_path / "deploy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "plugins": [str(PLUGIN)],
                "source": {"type": "images", "path": str(folder)},
                "backend": {"type": "dpt", "model": str(onnx_file)},
            }
        )
    )
    return config


@pytest.mark.qnn
def test_dpt_deploy_compile_local_runs_as_a_model_folder(tmp_path, dpt):
    model, onnx_file = dpt
    folder = photos(tmp_path / "photos", {"a": 64, "b": 64})
    result = run_edgedepth(
        "deploy", "compile", "--config", str(deploy_config(tmp_path, folder, onnx_file)),
        "--out", str(tmp_path / "build"), "--local", "--samples", "2", timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "run it: backend: {type: dpt, model: " in result.stdout
    out = run_dpt(tmp_path, folder, tmp_path / "build", "htp", runtime="qnn")
    assert worst_error(out, model, folder) <= 2e-2
    # The float model kept beside the context binary runs on the CPU.
    out = run_dpt(tmp_path, folder, tmp_path / "build", "cpu", runtime="onnx-cpu")
    assert worst_error(out, model, folder) <= 1e-4


@pytest.mark.qnn
def test_dpt_deploy_compile_aihub_runs_as_a_model_folder(tmp_path, dpt, hub):
    model, onnx_file = dpt
    folder = photos(tmp_path / "photos", {"a": 64, "b": 64})
    result = run_edgedepth(
        "deploy", "compile", "--config", str(deploy_config(tmp_path, folder, onnx_file)),
        "--out", str(tmp_path / "hub"), "--aihub", "--device", DEVICE, "--samples", "2",
        env={"QAIHUB_CLIENT_INI": str(tmp_path / "client.ini"), **NO_PROXY}, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (job,) = [j for j in hub.jobs.values() if j.kind == "compile"]
    assert job.pb.model.model_id  # the DPT graph went up, with its own input name
    out = run_dpt(tmp_path, folder, tmp_path / "hub", "htp", runtime="qnn")
    assert worst_error(out, model, folder) <= 2e-2
