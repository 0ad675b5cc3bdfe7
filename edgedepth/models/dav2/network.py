"""DepthAnythingV2: a DINOv2 ViT encoder and a DPT head, written to load the official checkpoints
unchanged (parameter names and shapes follow the reference layout: ``pretrained.*`` for the
encoder, ``depth_head.*`` for the head).

Relative models end in ReLU (disparity, larger is nearer); metric models in a sigmoid scaled by
``max_depth`` (metres). Needs torch (the ``torch`` extra); the ONNX/QNN runtime does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

PATCH_SIZE = 14
#: The pretrained position embedding covers 37×37 patches (518×518 input).
PRETRAINED_GRID = 37
#: DINOv2's interpolation offset (``interpolate_offset``): scale factor (n + 0.1) / 37.
INTERPOLATE_OFFSET = 0.1

ModelKind = Literal["relative", "metric"]


@dataclass(frozen=True)
class DAv2Config:
    """One DepthAnythingV2 variant. The named encoders are in :data:`ENCODERS`; small test
    configurations (fewer blocks, a smaller position grid) are the same class."""

    embed_dim: int
    depth: int
    num_heads: int
    features: int
    out_channels: tuple[int, int, int, int]
    tapped_blocks: tuple[int, int, int, int]
    kind: ModelKind = "relative"
    #: Metric models: sigmoid × max_depth metres (20 Hypersim indoor, 80 VKITTI outdoor).
    max_depth: float = 20.0
    #: Side of the pretrained position-embedding grid, in patches.
    pos_grid: int = PRETRAINED_GRID
    encoder: str = "custom"

    @property
    def native_size(self) -> int:
        return self.pos_grid * PATCH_SIZE


ENCODERS: dict[str, DAv2Config] = {
    "vits": DAv2Config(384, 12, 6, 64, (48, 96, 192, 384), (2, 5, 8, 11), encoder="vits"),
    "vitb": DAv2Config(768, 12, 12, 128, (96, 192, 384, 768), (2, 5, 8, 11), encoder="vitb"),
    "vitl": DAv2Config(1024, 24, 16, 256, (256, 512, 1024, 1024), (4, 11, 17, 23), encoder="vitl"),
}


def config_for(encoder: str, kind: ModelKind = "relative", max_depth: float = 20.0) -> DAv2Config:
    return replace(ENCODERS[encoder], kind=kind, max_depth=max_depth)


# --- DINOv2 encoder ------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(image).flatten(2).transpose(1, 2)  # B × patches × D


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, count, dim = tokens.shape
        qkv = self.qkv(tokens).reshape(batch, count, 3, self.num_heads, dim // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(query, key, value)
        return self.proj(attended.transpose(1, 2).reshape(batch, count, dim))


class PerHeadAttention(nn.Module):
    """The same function as :class:`Attention` with one small q/k/v projection per head instead
    of the fused qkv: the LPCVC 2025 2nd place measured this halving HTP latency at 350²."""

    def __init__(self, fused: Attention) -> None:
        super().__init__()
        dim = fused.qkv.in_features
        heads = fused.num_heads
        head_dim = dim // heads
        self.scale = head_dim**-0.5
        weight, bias = fused.qkv.weight.detach(), fused.qkv.bias.detach()

        def projection(part: int, head: int) -> nn.Linear:
            rows = slice(part * dim + head * head_dim, part * dim + (head + 1) * head_dim)
            linear = nn.Linear(dim, head_dim)
            linear.weight.data.copy_(weight[rows])
            linear.bias.data.copy_(bias[rows])
            return linear

        self.queries = nn.ModuleList(projection(0, h) for h in range(heads))
        self.keys = nn.ModuleList(projection(1, h) for h in range(heads))
        self.values = nn.ModuleList(projection(2, h) for h in range(heads))
        self.proj = fused.proj

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        heads = []
        for query, key, value in zip(self.queries, self.keys, self.values, strict=True):
            weights = (query(tokens) * self.scale) @ key(tokens).transpose(1, 2)
            heads.append(weights.softmax(dim=-1) @ value(tokens))
        return self.proj(torch.cat(heads, dim=-1))


def split_attention_per_head(model: nn.Module) -> None:
    """Replace every fused attention in ``model`` by :class:`PerHeadAttention` (for export)."""
    for block in model.modules():
        if isinstance(block, Block) and isinstance(block.attn, Attention):
            block.attn = PerHeadAttention(block.attn)


class Mlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * 4)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(dim * 4, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(tokens)))


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens * self.gamma


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim)
        self.ls2 = LayerScale(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.ls1(self.attn(self.norm1(tokens)))
        return tokens + self.ls2(self.mlp(self.norm2(tokens)))


def interpolate_pos_embed(pos_embed: torch.Tensor, patch_h: int, patch_w: int) -> torch.Tensor:
    """The pretrained (1, 1 + g², D) embedding for a patch_h × patch_w grid, as DINOv2 does it:
    bicubic, no antialias, scale factor ((h + 0.1) / g, (w + 0.1) / g); unchanged at g × g.

    This is the official DepthAnythingV2 code's function. transformers' DepthAnything
    interpolates to ``size=(h, w)`` instead: its depth differs from the official one (and ours)
    at every size but the native 518×518."""
    grid = math.isqrt(pos_embed.shape[1] - 1)
    if patch_h == grid and patch_w == grid:
        return pos_embed
    dim = pos_embed.shape[-1]
    class_embed, patch_embed = pos_embed[:, :1], pos_embed[:, 1:].float()
    patch_embed = patch_embed.reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
    patch_embed = F.interpolate(
        patch_embed,
        scale_factor=(
            (patch_h + INTERPOLATE_OFFSET) / grid,
            (patch_w + INTERPOLATE_OFFSET) / grid,
        ),
        mode="bicubic",
        antialias=False,
    )
    if patch_embed.shape[-2:] != (patch_h, patch_w):
        raise ValueError(f"position embedding came out {tuple(patch_embed.shape[-2:])}")
    patch_embed = patch_embed.permute(0, 2, 3, 1).reshape(1, patch_h * patch_w, dim)
    return torch.cat((class_embed, patch_embed.to(pos_embed.dtype)), dim=1)


class DinoV2(nn.Module):
    """The ViT encoder; returns the normalised patch tokens of the tapped blocks."""

    def __init__(self, config: DAv2Config) -> None:
        super().__init__()
        dim = config.embed_dim
        self.tapped_blocks = config.tapped_blocks
        self.patch_embed = PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.pos_grid**2 + 1, dim))
        # Unused at inference; kept so that official checkpoints load strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList(Block(dim, config.num_heads) for _ in range(config.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        #: Set by :meth:`freeze_input_size` for export: a constant instead of a cubic resize.
        self.fixed_pos_embed: torch.Tensor | None = None

    def freeze_input_size(self, patch_h: int, patch_w: int) -> None:
        """Precompute the interpolated position embedding for one input size (QNN rejects the
        cubic Resize the interpolation would otherwise put in the graph)."""
        with torch.no_grad():
            self.fixed_pos_embed = interpolate_pos_embed(self.pos_embed, patch_h, patch_w).clone()

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        patch_h, patch_w = image.shape[-2] // PATCH_SIZE, image.shape[-1] // PATCH_SIZE
        tokens = self.patch_embed(image)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        if self.fixed_pos_embed is not None:
            if self.fixed_pos_embed.shape[1] != tokens.shape[1]:
                raise ValueError("input size differs from the one frozen for export")
            tokens = tokens + self.fixed_pos_embed
        else:
            tokens = tokens + interpolate_pos_embed(self.pos_embed, patch_h, patch_w)
        tapped = []
        for index, block in enumerate(self.blocks):
            tokens = block(tokens)
            if index in self.tapped_blocks:
                tapped.append(self.norm(tokens)[:, 1:])
        return tapped


# --- DPT head ------------------------------------------------------------------------------------


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FeatureFusionBlock(nn.Module):
    """Adds the skip features (after a residual unit), refines, upsamples (bilinear,
    align_corners) to ``size`` or ×2, and projects with a 1×1 conv."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(
        self,
        path: torch.Tensor,
        skip: torch.Tensor | None = None,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        if size is None:
            path = F.interpolate(path, scale_factor=2.0, mode="bilinear", align_corners=True)
        else:
            path = F.interpolate(path, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(path)


class Scratch(nn.Module):
    def __init__(self, config: DAv2Config) -> None:
        super().__init__()
        features = config.features
        for level, channels in enumerate(config.out_channels, start=1):
            self.add_module(
                f"layer{level}_rn", nn.Conv2d(channels, features, 3, padding=1, bias=False)
            )
        for level in range(1, 5):
            self.add_module(f"refinenet{level}", FeatureFusionBlock(features))
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        final: nn.Module = nn.ReLU() if config.kind == "relative" else nn.Sigmoid()
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 1), final
        )


class DPTHead(nn.Module):
    def __init__(self, config: DAv2Config) -> None:
        super().__init__()
        channels = config.out_channels
        self.projects = nn.ModuleList(nn.Conv2d(config.embed_dim, c, 1) for c in channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(channels[0], channels[0], 4, stride=4),  # ×4
                nn.ConvTranspose2d(channels[1], channels[1], 2, stride=2),  # ×2
                nn.Identity(),
                nn.Conv2d(channels[3], channels[3], 3, stride=2, padding=1),  # ÷2
            ]
        )
        self.scratch = Scratch(config)

    def forward(self, tapped: list[torch.Tensor], patch_h: int, patch_w: int) -> torch.Tensor:
        levels = []
        for tokens, project, resize in zip(tapped, self.projects, self.resize_layers, strict=True):
            grid = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, patch_h, patch_w)
            levels.append(resize(project(grid)))
        s = self.scratch
        layer1, layer2, layer3, layer4 = (
            s.layer1_rn(levels[0]),
            s.layer2_rn(levels[1]),
            s.layer3_rn(levels[2]),
            s.layer4_rn(levels[3]),
        )
        path = s.refinenet4(layer4, size=layer3.shape[2:])
        path = s.refinenet3(path, layer3, size=layer2.shape[2:])
        path = s.refinenet2(path, layer2, size=layer1.shape[2:])
        path = s.refinenet1(path, layer1)
        out = s.output_conv1(path)
        out = F.interpolate(
            out,
            size=(patch_h * PATCH_SIZE, patch_w * PATCH_SIZE),
            mode="bilinear",
            align_corners=True,
        )
        return s.output_conv2(out)


class DepthAnythingV2(nn.Module):
    """Image (B×3×H×W, ImageNet-normalised, H and W multiples of 14) → depth (B×1×H×W):
    relative disparity, or metres for metric models."""

    def __init__(self, config: DAv2Config) -> None:
        super().__init__()
        self.config = config
        self.pretrained = DinoV2(config)
        self.depth_head = DPTHead(config)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        patch_h, patch_w = image.shape[-2] // PATCH_SIZE, image.shape[-1] // PATCH_SIZE
        depth = self.depth_head(self.pretrained(image), patch_h, patch_w)
        if self.config.kind == "metric":
            return depth * self.config.max_depth
        return depth
