"""Ready DepthAnythingV2 ONNX files as users download them, run through ``backend.model:``
without torch: the Hugging Face ``onnx/model.onnx`` layout (``pixel_values`` → ``predicted_depth``,
symbolic sizes, normalisation on the host) and Qualcomm AI Hub Models' (``image`` in [0, 1] →
``depth_estimates``, channel-first or channel-last). The files are made here in exactly those
layouts from transformers' model, and the depth is checked against transformers' own forward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgedepth.media.imageops import read_rgb
from tests.conftest import blocked_modules, run_edgedepth
from tests.dav2_fixtures import TINY, export_hf_onnx, export_qai_hub_onnx, hf_model

NO_TORCH = ("torch", "transformers")
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
#: (height, width) of the test photos: multiples of 14, two sizes for the symbolic-size files.
PHOTOS = {"a": (126, 168), "b": (140, 126)}


@pytest.fixture(scope="module")
def model():
    return hf_model("relative", TINY, seed=5)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, (height, width) in PHOTOS.items():
        # Smooth gradients and noise: an image the network's output varies over.
        ramp = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 3))
        noise = rng.normal(0, 40, (height, width, 3))
        Image.fromarray(np.clip(ramp + noise, 0, 255).astype(np.uint8)).save(folder / f"{name}.png")
    return folder


def transformers_depth(model, rgb: np.ndarray) -> np.ndarray:
    """What transformers computes for an image as its DPT image processor hands it over
    (rescaled by 1/255, ImageNet-normalised; the photos are already multiples of 14)."""
    pixels = ((rgb.astype(np.float32) / 255 - MEAN) / STD).transpose(2, 0, 1)[None]
    with torch.no_grad():
        return model(pixel_values=torch.from_numpy(pixels)).predicted_depth[0].numpy()


def run_ready(tmp_path, write_config, photos, model_path, runtime="onnx-cpu", **resize):
    config = write_config(
        {
            "source": {"type": "images", "path": str(photos)},
            "preprocess": {"resize": resize or {"policy": "none"}, "restore_size": False},
            "backend": {"type": "dav2-relative", "model": str(model_path), "runtime": runtime},
            "sinks": [{"type": "npy", "dir": "out", "existing": "clear"}],
            "runtime": {"cache_dir": str(tmp_path / "cache")},
        }
    )
    env = blocked_modules(tmp_path / "blocker", *NO_TORCH)
    return run_edgedepth("run", "--config", str(config), env=env, timeout=600)


def assert_transformers_depth(model, photos: Path, out: Path, tolerance: float) -> None:
    for index, name in enumerate(sorted(PHOTOS)):
        expected = transformers_depth(model, read_rgb(photos / f"{name}.png"))
        depth = np.load(out / f"{index:06d}.npy")
        assert depth.shape == PHOTOS[name]
        error = np.abs(depth - expected).max() / np.abs(expected).max()
        assert error < tolerance, (name, error)


def test_hugging_face_onnx_runs_without_torch_at_every_size(tmp_path, write_config, photos, model):
    repo = tmp_path / "depth-anything-v2-tiny"  # as downloaded: the repository folder
    export_hf_onnx(repo, model)
    result = run_ready(tmp_path, write_config, photos, repo)
    assert result.returncode == 0, result.stderr
    assert "(huggingface layout)" in result.stderr
    assert_transformers_depth(model, photos, tmp_path / "out", 1e-4)

    # Sides that are not multiples of the patch: one line naming the file and the fix.
    refused = run_ready(tmp_path, write_config, photos, repo, policy="fixed", width=130, height=130)
    assert refused.returncode == 2, refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert "takes sides that are multiples of 14 but the resize policy delivers 130×130" in line


@pytest.mark.parametrize("channels_last", [False, True], ids=["onnx", "channel-last"])
def test_qai_hub_models_onnx_runs_without_torch(
    tmp_path, write_config, photos, model, channels_last
):
    path = export_qai_hub_onnx(tmp_path / "depth_anything_v2.onnx", model, 126, channels_last)
    result = run_ready(tmp_path, write_config, photos, path, policy="fixed", width=126, height=126)
    assert result.returncode == 0, result.stderr
    assert "(qai-hub-models layout)" in result.stderr
    # `check` reads the input size as the run does (channel-last: 1×S×S×3).
    checked = run_edgedepth("check", "--config", str(tmp_path / "pipeline.yaml"))
    assert checked.returncode == 0, checked.stderr
    from edgedepth.media.imageops import resize

    for index, name in enumerate(sorted(PHOTOS)):
        # The frame as the fixed policy hands it over: float RGB on the 0–255 scale.
        image = resize(read_rgb(photos / f"{name}.png").astype(np.float32), (126, 126), "bilinear")
        pixels = ((image / 255 - MEAN) / STD).transpose(2, 0, 1)[None]
        with torch.no_grad():
            expected = model(pixel_values=torch.from_numpy(pixels)).predicted_depth[0].numpy()
        depth = np.load(tmp_path / "out" / f"{index:06d}.npy")
        assert depth.shape == (126, 126)
        assert np.abs(depth - expected).max() / np.abs(expected).max() < 1e-4


@pytest.mark.qnn
def test_hugging_face_onnx_on_the_htp_gets_a_static_graph_per_size(
    tmp_path, write_config, photos, model
):
    repo = tmp_path / "repo"
    export_hf_onnx(repo, model)
    result = run_ready(tmp_path, write_config, photos, repo, runtime="qnn")
    assert result.returncode == 0, result.stderr
    assert "new input size 140×126: compiling a graph of that size for the HTP" in result.stderr
    contexts = sorted(path.name for path in (tmp_path / "cache" / "qnn").rglob("*_ctx.onnx"))
    assert [name.split("-")[-1] for name in contexts] == ["126x168_ctx.onnx", "140x126_ctx.onnx"]
    assert_transformers_depth(model, photos, tmp_path / "out", 1e-2)  # fp16 on the HTP
