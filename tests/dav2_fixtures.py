"""Checkpoints the tests make themselves (no weights can be downloaded here): random weights in
the official and the Hugging Face layouts, scaled so that every layer carries signal."""

from __future__ import annotations

from pathlib import Path

import torch

from edgedepth.models.dav2_checkpoint import randomize

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
    from edgedepth.models.dav2 import DepthAnythingV2, config_for

    model = DepthAnythingV2(config_for(encoder, kind))
    randomize(model, seed)
    torch.save(model.state_dict(), path)
    return model.eval()
