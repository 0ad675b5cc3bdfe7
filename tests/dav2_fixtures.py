"""Checkpoints the tests make themselves (no weights can be downloaded here): random weights in
the official and the Hugging Face layouts, scaled so that every layer carries signal."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from edgedepth.models.dav2.checkpoint import randomize

#: A 4-block ViT at 126×126 (9×9 patches): small enough for the QNN emulator.
TINY = {
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "image_size": 126,
    "neck_hidden_sizes": [16, 32, 64, 64],
    "fusion_hidden_size": 32,
}
VITS = {
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 6,
    "image_size": 518,
    "neck_hidden_sizes": [48, 96, 192, 384],
    "fusion_hidden_size": 64,
}


def hf_model(
    kind: str = "relative",
    size: dict | None = None,
    max_depth: int = 20,
    seed: int = 0,
    out_indices: list[int] | None = None,
):
    """A random transformers ``DepthAnythingForDepthEstimation`` (``out_indices``: the backbone
    stages that feed the head, 1-based; default the official quarter points)."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    size = size or VITS
    layers = size["num_hidden_layers"]
    backbone = Dinov2Config(
        hidden_size=size["hidden_size"],
        num_hidden_layers=layers,
        num_attention_heads=size["num_attention_heads"],
        image_size=size["image_size"],
        patch_size=14,
        out_indices=out_indices or [layers * q // 4 for q in (1, 2, 3, 4)],
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=size["neck_hidden_sizes"],
        fusion_hidden_size=size["fusion_hidden_size"],
        reassemble_hidden_size=size["hidden_size"],
        depth_estimation_type=kind,
        max_depth=max_depth if kind == "metric" else 1,
    )
    model = DepthAnythingForDepthEstimation(config).eval()
    randomize(model, seed)
    with torch.no_grad():
        model.head.conv3.bias.fill_(1.0)  # keep the relative ReLU output mostly positive
    return model


def save_hf(
    folder: Path,
    kind: str = "relative",
    size: dict | None = None,
    seed: int = 0,
    out_indices: list[int] | None = None,
):
    model = hf_model(kind, size, seed=seed, out_indices=out_indices)
    model.save_pretrained(folder)
    return model


def save_official_pth(path: Path, encoder: str = "vits", kind: str = "relative", seed: int = 0):
    """A random model saved as a plain state dict, as the official release files are."""
    from edgedepth.models.dav2.network import DepthAnythingV2, config_for

    model = DepthAnythingV2(config_for(encoder, kind))
    randomize(model, seed)
    torch.save(model.state_dict(), path)
    return model.eval()


def seeded_state_dict(
    shapes: Mapping[str, tuple[int, ...]], seed: int, kind: str = "relative"
) -> dict[str, torch.Tensor]:
    """Random weights for every name in ``shapes``, each tensor drawn from numpy's PCG64 seeded
    with ``(seed, crc32(name))``: the same numbers whatever order a model lists its parameters
    in, with any torch. tests/tools/official_dav2_golden.py fills the official code's model with
    them and tests/test_official_dav2.py ours. Unit-gain weights, LayerScale about 0.1, random
    biases, norms and position embedding (a stricter comparison than zeros and ones)."""
    state = {}
    for name, shape in shapes.items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        noise = rng.standard_normal(shape)
        if name.endswith("gamma"):  # LayerScale
            values = 0.1 + 0.02 * noise
        elif "norm" in name and name.endswith("weight"):
            values = 1.0 + 0.1 * noise
        elif name.endswith(("pos_embed", "cls_token", "mask_token")):
            values = 0.5 * noise
        elif len(shape) > 1:
            values = noise / np.sqrt(np.prod(shape[1:]))
        elif kind == "relative" and name == "depth_head.scratch.output_conv2.2.bias":
            values = 3.0 + 0.1 * noise  # keeps the final ReLU mostly active
        else:
            values = 0.1 * noise
        state[name] = torch.from_numpy(values.astype(np.float32))
    return state


def seeded_photo(seed: int, height: int, width: int) -> np.ndarray:
    """A uint8 height×width×3 noise picture (the official tests' input is BGR, ours RGB)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def seeded_network_input(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 standard-normal tensor: an ImageNet-normalised image, as the network takes."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, **names_and_axes) -> Path:
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), str(path), opset_version=17, dynamo=False,
                          **names_and_axes)  # fmt: skip
    return path


class _PredictedDepth(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).predicted_depth


def export_hf_onnx(repo: Path, model) -> Path:
    """``repo/onnx/model.onnx`` in the layout of the Hugging Face ONNX files (onnx-community's,
    exported with Optimum's depth-estimation layout): ``pixel_values`` batch_size×num_channels×
    height×width (ImageNet-normalised RGB) → ``predicted_depth`` batch_size×height×width, every
    size symbolic."""
    from transformers.models.depth_anything import modeling_depth_anything
    from transformers.utils import torch_int

    # The head sizes its output with int(), which tracing freezes to the example's size;
    # torch_int keeps it symbolic, so the file takes every size like the published ones.
    modeling_depth_anything.int = torch_int
    try:
        return _export(
            _PredictedDepth(model), torch.zeros(1, 3, 126, 126), repo / "onnx" / "model.onnx",
            input_names=["pixel_values"], output_names=["predicted_depth"],
            dynamic_axes={
                "pixel_values": {0: "batch_size", 1: "num_channels", 2: "height", 3: "width"},
                "predicted_depth": {0: "batch_size", 1: "height", 2: "width"},
            },
        )  # fmt: skip
    finally:
        del modeling_depth_anything.int


class _AiHubDepth(torch.nn.Module):
    """Qualcomm AI Hub Models' depth_anything_v2 forward: RGB in [0, 1], ImageNet normalisation
    inside, ``predicted_depth.unsqueeze(1)`` out; channel-last I/O as its QNN/TFLite compiles
    (--force_channel_last_input/_output)."""

    def __init__(self, model: torch.nn.Module, channels_last: bool) -> None:
        super().__init__()
        self.model, self.channels_last = model, channels_last
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            image = image.permute(0, 3, 1, 2)
        depth = self.model(pixel_values=(image - self.mean) / self.std).predicted_depth
        depth = depth.unsqueeze(1)
        return depth.permute(0, 2, 3, 1) if self.channels_last else depth


def export_qai_hub_onnx(path: Path, model, size: int = 126, channels_last: bool = False) -> Path:
    """A file in the layout Qualcomm AI Hub Models documents for depth_anything_v2: ``image``
    1×3×S×S → ``depth_estimates`` 1×1×S×S (channel-last: 1×S×S×3 → 1×S×S×1), static."""
    shape = (1, size, size, 3) if channels_last else (1, 3, size, size)
    return _export(
        _AiHubDepth(model, channels_last), torch.zeros(shape), path,
        input_names=["image"], output_names=["depth_estimates"],
    )  # fmt: skip
