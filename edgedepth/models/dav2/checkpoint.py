"""DepthAnythingV2 checkpoints: official ``.pth`` files and Hugging Face ``*-hf`` folders, read
without executing pickled code, converted to our (the official) layout, and checked against the
chosen variant with errors that list the mismatched keys.

What a checkpoint says about itself is followed: a Hugging Face ``config.json`` gives the kind
(relative/metric), ``max_depth``, the tapped blocks (``backbone_config.out_indices``) and the
number of heads, even for a known encoder shape; an official file name gives the kind and the
metric dataset. A file that says neither (a renamed ``.pth``) takes the kind from the backend
type, with a warning.

Hugging Face weights run through edgedepth's model, which follows the official code: at input
sizes other than 518 the result differs from transformers' own ``DepthAnythingForDepthEstimation``
forward, which interpolates the position embedding to ``size=(h, w)`` where the official code
(and edgedepth) uses a scale factor with DINOv2's +0.1 offset. At 518×518 both agree.

Which file a config names, the official files and a checkpoint's identity:
:mod:`edgedepth.models.dav2.weights` (no torch).
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import pickletools
import re
import warnings
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from edgedepth.models.dav2.network import ENCODERS, DAv2Config, DepthAnythingV2, ModelKind
from edgedepth.models.dav2.weights import METRIC_DATASETS, CheckpointError

log = logging.getLogger("edgedepth")

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint file says about itself."""

    path: Path
    #: From config.json (HF) or the official file name; None when it cannot be told.
    kind: ModelKind | None
    max_depth: float | None
    #: Tapped blocks from a HF config (``out_indices``); None for plain state dicts.
    tapped_blocks: tuple[int, int, int, int] | None
    num_heads: int | None


# --- reading -------------------------------------------------------------------------------------


def read_checkpoint(path: Path) -> tuple[StateDict, CheckpointInfo]:
    """Read a checkpoint in the official layout (converting Hugging Face layouts).

    Accepts an official ``.pth``, a ``.safetensors`` file (with ``config.json`` beside it if it
    is in the HF layout) or a HF model folder."""
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    hf_config: dict[str, Any] | None = None
    weights = path
    if path.is_dir():
        candidates = [path / "model.safetensors", path / "pytorch_model.bin"]
        weights = next((c for c in candidates if c.exists()), None)  # type: ignore[assignment]
        if weights is None:
            raise CheckpointError(f"{path}: no model.safetensors or pytorch_model.bin in folder")
    config_file = weights.parent / "config.json"
    if config_file.exists() and weights.suffix != ".pth":
        try:
            hf_config = json.loads(config_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{config_file}: not valid JSON ({exc})") from None
        if not isinstance(hf_config, dict):
            raise CheckpointError(
                f"{config_file}: a model config is a JSON object, not a {type(hf_config).__name__}"
            )
    info = _describe(path, weights, hf_config)  # a bad config.json before reading the weights
    state = _load_tensors(weights)
    if any(key.startswith("backbone.") for key in state):
        state = hf_to_official(state)
    elif any(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state, info


def _is_pickle(path: Path) -> bool:
    """Whether the file is a well-formed pickle stream (alone, or as the ``data.pkl`` of
    torch's zip format), read with :mod:`pickletools` without running any of it."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                data = archive.read(names[0]) if names else b""
        else:
            data = path.read_bytes()
        with warnings.catch_warnings():  # its decoding of random bytes warns on escapes
            warnings.simplefilter("ignore")
            for _ in pickletools.genops(data):
                pass
    except (ValueError, EOFError, zipfile.BadZipFile, OSError, IndexError):
        return False
    return bool(data)


def _load_tensors(path: Path) -> StateDict:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(
                f"cannot read {path}: truncated or not safetensors ({exc})"
            ) from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch refused it: a well-formed pickle it refused names Python objects (code); a
        # stream that is not a pickle at all is not a checkpoint.
        if _is_pickle(path):
            raise CheckpointError(
                f"refused to load {path}: it contains pickled Python objects or code, not only "
                "tensors (official checkpoints are plain state dicts)"
            ) from None
        raise CheckpointError(
            f"cannot read {path}: not a PyTorch checkpoint (damaged, or another kind of file)"
        ) from None
    except Exception as exc:  # torch's unpickler on other bytes: IndexError, ValueError, …
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, (RuntimeError, EOFError, OSError, ValueError)):
            first_line = f"{type(exc).__name__}: {first_line}"
        raise CheckpointError(
            f"cannot read {path}: truncated or not a PyTorch checkpoint ({first_line})"
        ) from None
    if (
        isinstance(loaded, dict)
        and "state_dict" in loaded
        and isinstance(loaded["state_dict"], dict)
    ):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return loaded


def _describe(path: Path, weights: Path, hf_config: dict[str, Any] | None) -> CheckpointInfo:
    kind: ModelKind | None = None
    max_depth: float | None = None
    tapped: tuple[int, int, int, int] | None = None
    heads: int | None = None
    if hf_config is not None:
        config_file = weights.parent / "config.json"
        kind = "metric" if hf_config.get("depth_estimation_type") == "metric" else "relative"
        if kind == "metric":
            try:
                max_depth = float(hf_config["max_depth"])
            except (KeyError, TypeError, ValueError):
                raise CheckpointError(
                    f"{config_file}: a metric model needs a numeric max_depth (metres), got "
                    f"{hf_config.get('max_depth')!r}; or set backend.max_depth"
                ) from None
        backbone = hf_config.get("backbone_config") or {}
        if not isinstance(backbone, dict):
            raise CheckpointError(f"{config_file}: backbone_config must be a JSON object")
        # Backbone stages: 0 is the patch embedding ("stem"), stage i the output of block i - 1.
        stages = backbone.get("out_indices") or [
            int(name.removeprefix("stage")) for name in backbone.get("out_features") or []
        ]
        if stages:
            if len(stages) != 4 or not all(int(i) > 0 for i in stages):
                raise CheckpointError(
                    f"{config_file}: backbone_config.out_indices {stages}: "
                    "the DPT head takes four transformer blocks (indices from 1)"
                )
            tapped = tuple(int(i) - 1 for i in stages)  # type: ignore[assignment]
        heads = backbone.get("num_attention_heads")
    else:
        name = weights.name.lower()
        if re.fullmatch(r"depth_anything_v2_vit[sbl]\.pth", name):
            kind = "relative"
        elif "metric" in name:
            kind = "metric"
        for dataset, (_, depth) in METRIC_DATASETS.items():
            if dataset in name:
                max_depth = depth
    return CheckpointInfo(path, kind, max_depth, tapped, heads)


# --- Hugging Face layout -------------------------------------------------------------------------


def _renames(depth: int) -> dict[str, str]:
    """official name → HF name, for every parameter except the fused qkv."""
    names = {
        "pretrained.cls_token": "backbone.embeddings.cls_token",
        "pretrained.mask_token": "backbone.embeddings.mask_token",
        "pretrained.pos_embed": "backbone.embeddings.position_embeddings",
    }
    wb = ("weight", "bias")
    for p in wb:
        names[f"pretrained.patch_embed.proj.{p}"] = (
            f"backbone.embeddings.patch_embeddings.projection.{p}"
        )
        names[f"pretrained.norm.{p}"] = f"backbone.layernorm.{p}"
    for i in range(depth):
        ours, theirs = f"pretrained.blocks.{i}", f"backbone.encoder.layer.{i}"
        names[f"{ours}.ls1.gamma"] = f"{theirs}.layer_scale1.lambda1"
        names[f"{ours}.ls2.gamma"] = f"{theirs}.layer_scale2.lambda1"
        for p in wb:
            for part in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                names[f"{ours}.{part}.{p}"] = f"{theirs}.{part}.{p}"
            names[f"{ours}.attn.proj.{p}"] = f"{theirs}.attention.output.dense.{p}"
    for i in range(4):
        for p in wb:
            names[f"depth_head.projects.{i}.{p}"] = (
                f"neck.reassemble_stage.layers.{i}.projection.{p}"
            )
            if i != 2:
                names[f"depth_head.resize_layers.{i}.{p}"] = (
                    f"neck.reassemble_stage.layers.{i}.resize.{p}"
                )
        names[f"depth_head.scratch.layer{i + 1}_rn.weight"] = f"neck.convs.{i}.weight"
        ours, theirs = f"depth_head.scratch.refinenet{4 - i}", f"neck.fusion_stage.layers.{i}"
        for p in wb:
            names[f"{ours}.out_conv.{p}"] = f"{theirs}.projection.{p}"
            for unit in (1, 2):
                for conv in (1, 2):
                    names[f"{ours}.resConfUnit{unit}.conv{conv}.{p}"] = (
                        f"{theirs}.residual_layer{unit}.convolution{conv}.{p}"
                    )
    for p in wb:
        names[f"depth_head.scratch.output_conv1.{p}"] = f"head.conv1.{p}"
        names[f"depth_head.scratch.output_conv2.0.{p}"] = f"head.conv2.{p}"
        names[f"depth_head.scratch.output_conv2.2.{p}"] = f"head.conv3.{p}"
    return names


def _hf_depth(state: StateDict) -> int:
    indices = {
        int(m.group(1)) for k in state if (m := re.match(r"backbone\.encoder\.layer\.(\d+)\.", k))
    }
    return max(indices) + 1 if indices else 0


# transformers ≥ 5 names the attention projections q/k/v/o_proj in memory.
_HF5_ALIASES = {
    ".attention.q_proj.": ".attention.attention.query.",
    ".attention.k_proj.": ".attention.attention.key.",
    ".attention.v_proj.": ".attention.attention.value.",
    ".attention.o_proj.": ".attention.output.dense.",
}


def hf_to_official(state: StateDict) -> StateDict:
    """Hugging Face ``DepthAnythingForDepthEstimation`` weights → the official layout. Keys
    that do not map are kept as they are (the strict load then reports them)."""
    hub_state = {}
    for key, value in state.items():
        for alias, canonical in _HF5_ALIASES.items():
            key = key.replace(alias, canonical)
        hub_state[key] = value
    depth = _hf_depth(hub_state)
    to_official = {hf: ours for ours, hf in _renames(depth).items()}
    converted: StateDict = {}
    for key, value in hub_state.items():
        match = re.fullmatch(
            r"backbone\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)",
            key,
        )
        if match:
            continue  # fused below
        converted[to_official.get(key, key)] = value
    for i in range(depth):
        prefix = f"backbone.encoder.layer.{i}.attention.attention"
        for p in ("weight", "bias"):
            parts = [hub_state.get(f"{prefix}.{name}.{p}") for name in ("query", "key", "value")]
            if all(part is not None for part in parts):
                converted[f"pretrained.blocks.{i}.attn.qkv.{p}"] = torch.cat(parts, dim=0)  # type: ignore[arg-type]
    return converted


def official_to_hf(state: StateDict) -> StateDict:
    """The official layout → Hugging Face's (the inverse of :func:`hf_to_official`)."""
    depth = 1 + max(
        int(m.group(1)) for k in state if (m := re.match(r"pretrained\.blocks\.(\d+)\.", k))
    )
    renames = _renames(depth)
    converted: StateDict = {}
    for key, value in state.items():
        match = re.fullmatch(r"pretrained\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)", key)
        if match:
            prefix = f"backbone.encoder.layer.{match.group(1)}.attention.attention"
            for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0), strict=True):
                converted[f"{prefix}.{name}.{match.group(2)}"] = part.clone()
            continue
        converted[renames.get(key, key)] = value
    return converted


# --- variant and strict load ---------------------------------------------------------------------


def infer_config(state: StateDict, info: CheckpointInfo) -> DAv2Config:
    """The variant the weights were trained as (kind and max_depth are set by the caller)."""
    try:
        embed_dim = state["pretrained.patch_embed.proj.weight"].shape[0]
        depth = 1 + max(
            int(m.group(1)) for k in state if (m := re.match(r"pretrained\.blocks\.(\d+)\.", k))
        )
        pos_grid = math.isqrt(state["pretrained.pos_embed"].shape[1] - 1)
        features = state["depth_head.scratch.layer1_rn.weight"].shape[0]
        out_channels = tuple(state[f"depth_head.projects.{i}.weight"].shape[0] for i in range(4))
    except (KeyError, ValueError):
        raise CheckpointError(
            f"{info.path}: not a DepthAnythingV2 checkpoint (no DINOv2 encoder / DPT head keys; "
            f"first keys: {', '.join(list(state)[:3])})"
        ) from None
    if info.tapped_blocks is not None and max(info.tapped_blocks) >= depth:
        raise CheckpointError(
            f"{info.path}: config.json taps block {max(info.tapped_blocks) + 1} (out_indices) "
            f"but the weights have {depth} blocks"
        )
    for name, known in ENCODERS.items():
        if (known.embed_dim, known.depth, known.features, known.out_channels, known.pos_grid) == (
            embed_dim,
            depth,
            features,
            out_channels,
            pos_grid,
        ):
            # A Hugging Face config.json says which blocks feed the head and how many heads
            # attend: it is followed even where it differs from the official variant.
            return replace(
                known,
                encoder=name,
                tapped_blocks=info.tapped_blocks or known.tapped_blocks,
                num_heads=info.num_heads or known.num_heads,
            )
    tapped = info.tapped_blocks or tuple(depth * q // 4 - 1 for q in (1, 2, 3, 4))
    heads = info.num_heads or max(1, embed_dim // 64)
    return DAv2Config(
        embed_dim,
        depth,
        heads,
        features,
        out_channels,
        tapped,
        pos_grid=pos_grid,  # type: ignore[arg-type]
    )


def load_model(state: StateDict, config: DAv2Config, path: Path) -> DepthAnythingV2:
    """Build the model and load the weights strictly; a mismatch lists the first differences."""
    model = DepthAnythingV2(config)
    expected = model.state_dict()
    problems = []
    for key, tensor in expected.items():
        if key not in state:
            problems.append(f"missing {key} {tuple(tensor.shape)}")
        elif state[key].shape != tensor.shape:
            ours, theirs = tuple(tensor.shape), tuple(state[key].shape)
            problems.append(f"{key}: checkpoint {theirs} vs {config.encoder} {ours}")
    problems += [
        f"unexpected {key} {tuple(state[key].shape)}" for key in state if key not in expected
    ]
    if problems:
        shown = "; ".join(problems[:4])
        more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
        raise CheckpointError(
            f"{path} does not fit DepthAnythingV2 {config.encoder} {config.kind}: {shown}{more}"
        )
    model.load_state_dict({key: state[key].float() for key in expected}, strict=True)
    return model.eval()


def randomize(model: torch.nn.Module, seed: int = 0, biases: bool = True) -> None:
    """Random weights that carry signal through every layer (unit-gain weights, LayerScale 0.1),
    so that the output varies with the image: for tests, demos and parity checks, in any layout
    (ours, the official code's, transformers'). ``biases``: random biases and norm parameters
    too (a stricter parity check); otherwise zero biases and unit norms."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() > 1:
                fan_in = param[0].numel()
                param.copy_(torch.randn(param.shape, generator=generator) / math.sqrt(fan_in))
            elif name.endswith(("gamma", "lambda1")):
                param.fill_(0.1)
            elif not biases:
                if "norm" not in name:
                    param.zero_()
            elif "norm" in name and name.endswith("weight"):
                param.copy_(1 + 0.1 * torch.randn(param.shape, generator=generator))
            else:
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))


def random_model(config: DAv2Config, seed: int = 0) -> DepthAnythingV2:
    """Random weights (for tests and demos without a checkpoint): the output means nothing, but
    every layer carries signal (unit-gain weights, a sensible LayerScale), so it varies with the
    image instead of being all zeros."""
    model = DepthAnythingV2(config)
    randomize(model, seed, biases=False)
    with torch.no_grad():
        # Keep the relative head's final ReLU mostly active.
        model.depth_head.scratch.output_conv2[2].bias.fill_(1.0 if config.kind == "relative" else 0)
    return model.eval()
