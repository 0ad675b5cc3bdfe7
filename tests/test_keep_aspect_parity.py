"""`edgedepth run` with keep-aspect equals the official DepthAnythingV2 recipe end to end, on
every frame at its own size, with or without OpenCV installed.

The reference is built here from the official ``infer_image`` steps: RGB / 255, OpenCV bicubic to
the keep-aspect size, ImageNet normalisation, the network, bilinear ``align_corners=True`` back
to the frame. The network is ours (held against the official code's own outputs in
test_official_dav2.py, against transformers' in test_dav2.py); a tiny random model keeps the
exports fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
cv2 = pytest.importorskip("cv2")  # the reference is the official recipe, which uses OpenCV

from edgedepth.models.dav2 import checkpoint as ckpt  # noqa: E402
from tests.conftest import blocked_modules, run_edgedepth  # noqa: E402
from tests.dav2_fixtures import TINY, save_hf  # noqa: E402

LOWER_BOUND = 126  # the tiny model's native size (9 × 14)
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
#: name → (height, width): landscape and portrait, enlarged and shrunk; d repeats a's size.
PHOTOS = {"a": (90, 160), "b": (150, 110), "c": (300, 200), "d": (90, 160)}


def official_size(height: int, width: int) -> tuple[int, int]:
    """The official ``Resize(keep_aspect_ratio, 'lower_bound', ensure_multiple_of=14)``."""
    scale = max(LOWER_BOUND / height, LOWER_BOUND / width)

    def constrain(value: float) -> int:
        rounded = int(np.round(value / 14) * 14)
        return rounded if rounded >= LOWER_BOUND else int(np.ceil(value / 14) * 14)

    return constrain(height * scale), constrain(width * scale)


def official_depth(model, rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    new_h, new_w = official_size(height, width)
    image = cv2.resize(rgb / 255.0, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
    image = ((image - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)
    with torch.no_grad():
        depth = model(torch.from_numpy(image))
        depth = torch.nn.functional.interpolate(
            depth, (height, width), mode="bilinear", align_corners=True
        )
    return depth[0, 0].numpy()


def photo(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth shapes with sharp edges and noise: a cubic resize overshoots on it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(7 * x + s) * np.cos(5 * y - s) for s in (0.0, 1.0, 2.0)], axis=-1)
    image = 127 + 100 * base + rng.normal(0, 12, (height, width, 3))
    image[height // 3 : height // 2, width // 4 : width // 2] = (250, 10, 40)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for seed, (name, size) in enumerate(PHOTOS.items()):
        Image.fromarray(photo(*size, seed)).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny") / "tiny-relative-hf"
    save_hf(folder, "relative", TINY, seed=3)
    state, info = ckpt.read_checkpoint(folder)
    from dataclasses import replace

    config = replace(ckpt.infer_config(state, info), kind="relative")
    return folder, ckpt.load_model(state, config, folder)


def run_on_photos(tmp_path, write_config, photos, checkpoint, runtime, out, env=None, **backend):
    config = {
        "source": {"type": "images", "path": str(photos)},
        "preprocess": {"resize": {"policy": "keep-aspect", "lower_bound": LOWER_BOUND}},
        "backend": {
            "type": "dav2-relative",
            "checkpoint": str(checkpoint),
            "runtime": runtime,
            **backend,
        },
        "sinks": [{"type": "npy", "dir": out}],
        "runtime": {"cache_dir": "cache"},
    }
    result = run_edgedepth("run", "--config", str(write_config(config)), env=env)
    assert result.returncode == 0, result.stderr
    count = len(list(photos.glob("*.png")))
    return result, [np.load(tmp_path / out / f"{i:06d}.npy") for i in range(count)]


@pytest.mark.parametrize("runtime", ["onnx-cpu", "torch"])
def test_photos_of_different_sizes_match_the_official_recipe(
    tmp_path, write_config, photos, tiny_model, runtime
):
    """Each photo at its own keep-aspect size (three shapes, one repeated), against the
    official recipe: the old uint8 resize and half-pixel output resize were 0.1 off."""
    checkpoint, model = tiny_model
    # onnx-cpu with room for two open sessions: the repeated shape is reopened from the cache.
    extra = {"max_shapes": 2} if runtime == "onnx-cpu" else {}
    result, outputs = run_on_photos(
        tmp_path, write_config, photos, checkpoint, runtime, "out", **extra
    )
    for (name, size), depth in zip(PHOTOS.items(), outputs, strict=True):
        rgb = np.asarray(Image.open(photos / f"{name}.png"))
        reference = official_depth(model, rgb)
        assert depth.shape == size, name
        assert reference.std() > 1e-3 * np.abs(reference).max()  # the model carries signal
        error = np.abs(depth - reference).max() / np.abs(reference).max()
        assert error < 1e-4, (name, error)
    for size in ("168×126", "196×126"):
        assert f"new input size {size}" in result.stderr


def test_same_numbers_without_opencv(tmp_path, write_config, photos, tiny_model):
    """An install without OpenCV (Windows on Arm) gives the same depth, bit for bit, and the
    path never even tries to import it (no resize that would differ with it installed)."""
    checkpoint, _ = tiny_model
    _, with_cv2 = run_on_photos(tmp_path, write_config, photos, checkpoint, "onnx-cpu", "cv")
    blocker = tmp_path / "blocker"
    env = blocked_modules(blocker, "cv2")
    _, without = run_on_photos(
        tmp_path, write_config, photos, checkpoint, "onnx-cpu", "nocv", env=env
    )
    assert not (blocker / "attempts").exists(), (blocker / "attempts").read_text()
    for ours, theirs in zip(without, with_cv2, strict=True):
        assert np.array_equal(ours, theirs)


def test_ready_model_refuses_a_frame_of_another_size(tmp_path, write_config, photos, tiny_model):
    """A static ``model:`` exported for one size, given a photo of another: one line naming
    both sizes and what to set (ONNX Runtime's own message is four lines about dimensions)."""
    checkpoint, _ = tiny_model
    single = tmp_path / "single"
    single.mkdir()
    (single / "a.png").write_bytes((photos / "a.png").read_bytes())
    run_on_photos(tmp_path, write_config, single, checkpoint, "onnx-cpu", "first")
    (export,) = (tmp_path / "cache" / "exports").iterdir()
    config = {
        "source": {"type": "images", "path": str(photos)},
        "preprocess": {"resize": {"policy": "keep-aspect", "lower_bound": LOWER_BOUND}},
        "backend": {"type": "dav2-relative", "model": str(export), "runtime": "onnx-cpu"},
        "sinks": [{"type": "npy", "dir": "ready", "existing": "clear"}],
    }
    result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "takes 126×224 images" in line and "168×126" in line, line
    assert "preprocess.resize" in line and "backend.checkpoint" in line, line
    assert "failed on frame 1" in line, line
    # policy none: the frames go in as they are, 90×160 first.
    config["preprocess"] = {"resize": {"policy": "none"}}
    result = run_edgedepth("run", "--config", str(write_config(config)))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "takes 126×224 images" in line and "90×160" in line, line
