"""The contract of an exported DepthAnythingV2 graph, shared by the exporter (needs torch) and the
model plugin (does not): one float32 NCHW RGB input named ``image``, one output ``depth`` of
shape 1×1×H×W, and the pre/post processing that can live inside the graph
(:class:`GraphOptions`, ``backend.graph`` in YAML)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from edgedepth.api.options import StrictModel

INPUT_NAME = "image"
OUTPUT_NAME = "depth"
#: ImageNet statistics on the 0–255 scale (the LPCVC in-graph normalisation).
MEAN_255 = (123.675, 116.28, 103.53)
STD_255 = (58.395, 57.12, 57.375)
#: Bump when the exported graph changes for the same inputs (invalidates cached exports).
EXPORT_FORMAT = 4


class GraphOptions(StrictModel):
    """What is baked into the exported graph (all reachable from ``backend.graph`` in YAML).

    LPCVC layout: ``{resize_to: [350, 350], output_size: [480, 640], invert: true}`` with the
    resize policy ``none`` (the graph takes the 480×640 frame)."""

    normalize: bool = True
    """Input on the 0–255 scale, ImageNet normalisation inside the graph. False: the host normalises
    and the graph takes normalised input."""
    resize_to: tuple[int, int] | None = None
    """Resize inside the graph to this (height, width) before the network (bilinear); the graph then
    takes the image at the size the resize policy delivers (usually ``none``: as captured)."""
    output_size: tuple[int, int] | str | None = None
    """Resize the depth inside the graph to this (height, width), or "input" for the graph's
    input."""
    align_corners: bool = True
    """``align_corners`` of the in-graph bilinear resizes (LPCVC: true)."""
    invert: bool = False
    """Relative models: ``1 - minmax(d)`` inside the graph (LPCVC: near 0 → far 1)."""
    attention: Literal["auto", "fused", "per-head"] = "auto"
    """``per-head``: one small q/k/v projection per head instead of the fused qkv (same function;
    the LPCVC 2025 2nd place measured about half the HTP latency at 350² with it). ``auto``:
    per-head in graphs compiled for the HTP (runtime qnn, ``deploy compile`` / ``quantize``),
    fused elsewhere (the CPU runs the fused form faster)."""
    opset: int = Field(17, ge=13, le=21)
    """ONNX opset of the export."""

    @model_validator(mode="after")
    def _check(self) -> GraphOptions:
        if isinstance(self.output_size, str) and self.output_size != "input":
            raise ValueError('output_size must be [height, width] or "input"')
        for name in ("resize_to", "output_size"):
            size = getattr(self, name)
            if isinstance(size, tuple) and any(side <= 0 for side in size):
                raise ValueError(f"{name} {list(size)}: sides must be positive")
        if self.resize_to is not None and any(side % 14 for side in self.resize_to):
            raise ValueError(f"resize_to {list(self.resize_to)}: sides must be multiples of 14")
        return self

    def for_target(self, htp: bool) -> GraphOptions:
        """These options with ``auto`` decided for a graph that runs on the HTP or not."""
        if self.attention != "auto":
            return self
        return self.model_copy(update={"attention": "per-head" if htp else "fused"})


def normalize_on_host(image: np.ndarray) -> np.ndarray:
    """H×W×3 RGB (float32 on the 0–255 scale, or uint8) → 1×3×H×W float32 with ImageNet
    normalisation (for ``normalize: false``)."""
    tensor = image.astype(np.float32).transpose(2, 0, 1)[np.newaxis]
    mean = np.asarray(MEAN_255, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(STD_255, np.float32).reshape(1, 3, 1, 1)
    return (tensor - mean) / std


def image_tensor(image: np.ndarray, normalize_in_graph: bool) -> np.ndarray:
    """H×W×3 RGB (float32 on the 0–255 scale, or uint8) → the graph's 1×3×H×W float32 input."""
    if normalize_in_graph:
        return np.ascontiguousarray(image.transpose(2, 0, 1)[np.newaxis], dtype=np.float32)
    return normalize_on_host(image)
