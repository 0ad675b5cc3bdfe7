"""DepthAnythingV2 held against the official code's own numbers (the file
tests/data/dav2_official_golden.json, written by tests/tools/official_dav2_golden.py with the
official repository's code for a seeded ViT-S). Here, edgedepth's network with the same weights
(``seeded_state_dict``) on the same input, relative and metric; and `edgedepth run` (keep-aspect
resize, ImageNet normalisation, the network, the resize back to the frame) on the picture the
official ``infer_image`` was given.

Random weights lack real DINOv2's outlier activations: this shows the same function is computed,
not how accurate it is on trained weights."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")  # missing by design on Windows on Arm64 only

from edgedepth.models.dav2.network import DepthAnythingV2, config_for  # noqa: E402
from tests.conftest import run_edgedepth  # noqa: E402
from tests.dav2_fixtures import seeded_network_input, seeded_photo, seeded_state_dict  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "data" / "dav2_official_golden.json").read_text())
#: float32 through 12 blocks, another attention kernel (SDPA) and another resize implementation.
BOUND = 1e-4


@functools.cache
def seeded_model(kind: str) -> tuple[DepthAnythingV2, dict[str, torch.Tensor]]:
    """Ours, with the weights the official model was given (loaded strictly: same names)."""
    max_depth = GOLDEN["cases"][kind]["max_depth"] or 20.0
    model = DepthAnythingV2(config_for(GOLDEN["model"]["encoder"], kind, max_depth))
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    state = seeded_state_dict(shapes, GOLDEN["weights"]["seed"], kind)
    model.load_state_dict(state, strict=True)
    return model.eval(), state


def assert_official(depth: np.ndarray, golden: dict) -> None:
    """``depth`` against the official output: on the sampled grid, and its mean and spread over
    every pixel, relative to the official maximum."""
    s = GOLDEN["sample"]
    assert depth.shape == tuple(golden["shape"])
    grid = depth[s["row0"] :: s["row_step"], s["col0"] :: s["col_step"]].astype(np.float64)
    expected = np.array(golden["values"])
    assert expected.std() > 0.05 * golden["max"]  # the official output carries signal
    error = np.abs(grid - expected).max() / golden["max"]
    assert error < BOUND, error
    for statistic in ("mean", "std"):
        ours = float(getattr(depth.astype(np.float64), statistic)())
        assert abs(ours - golden[statistic]) < BOUND * golden["max"], statistic


@pytest.mark.parametrize("kind", ["relative", "metric"])
def test_the_network_computes_what_the_official_code_does(kind):
    """A 126×182 input: the position embedding interpolated from 37×37 to 9×13 patches, the
    tapped blocks, the DPT head, ReLU (relative) or sigmoid × max_depth (metric)."""
    model, _ = seeded_model(kind)
    case = GOLDEN["cases"][kind]["network"]
    image = seeded_network_input(case["input"]["seed"], tuple(case["input"]["shape"]))
    with torch.no_grad():
        depth = model(torch.from_numpy(image))[0, 0].numpy()
    assert_official(depth, case["depth"])


@pytest.fixture(scope="module")
def official_pth(tmp_path_factory) -> Path:
    """The seeded weights saved as an official release file is (a plain state dict)."""
    path = tmp_path_factory.mktemp("seeded") / "depth_anything_v2_vits.pth"
    torch.save(seeded_model("relative")[1], path)
    return path


def test_edgedepth_run_gives_the_official_infer_image_depth(tmp_path, write_config, official_pth):
    """The official ``infer_image(bgr, 126)`` against `edgedepth run` with keep-aspect 126 on the
    same picture (saved as RGB PNG): every step between the file and the depth."""
    case = GOLDEN["cases"]["relative"]["infer_image"]
    photo = case["photo"]
    bgr = seeded_photo(photo["seed"], photo["height"], photo["width"])
    (tmp_path / "photos").mkdir()
    Image.fromarray(bgr[..., ::-1]).save(tmp_path / "photos" / "photo.png")
    config = {
        "source": {"type": "images", "path": "photos"},
        "preprocess": {"resize": {"policy": "keep-aspect", "lower_bound": photo["input_size"]}},
        "backend": {
            "type": "dav2-relative",
            "checkpoint": str(official_pth),
            "runtime": "onnx-cpu",
        },
        "sinks": [{"type": "npy", "dir": "out"}],
        "runtime": {"cache_dir": "cache"},
    }
    result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode == 0, result.stderr
    assert_official(np.load(tmp_path / "out" / "000000.npy"), case["depth"])
