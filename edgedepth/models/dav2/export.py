"""Static-shape ONNX export of DepthAnythingV2 with optional in-graph pre/post processing
(:class:`edgedepth.models.dav2.graph.GraphOptions`) and its manifest. Cached per input size by
the runtime (:mod:`edgedepth.runtime.exports`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import edgedepth
from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import DepthKind
from edgedepth.engine.progress import long_call
from edgedepth.models.dav2.graph import (
    EXPORT_FORMAT,
    INPUT_NAME,
    MEAN_255,
    OUTPUT_NAME,
    STD_255,
    GraphOptions,
)
from edgedepth.models.dav2.network import (
    PATCH_SIZE,
    DAv2Config,
    DepthAnythingV2,
    split_attention_per_head,
)
from edgedepth.runtime.manifest import Manifest


def output_kind(config: DAv2Config, options: GraphOptions) -> DepthKind:
    if config.kind == "metric":
        return DepthKind.METRIC_METERS
    return DepthKind.RELATIVE_DEPTH if options.invert else DepthKind.RELATIVE_DISPARITY


@dataclass(frozen=True)
class GraphShapes:
    input_size: tuple[int, int]  # (h, w) the graph takes
    network_size: tuple[int, int]  # (h, w) the ViT sees
    output_size: tuple[int, int]  # (h, w) the graph returns


def graph_shapes(options: GraphOptions, input_size: tuple[int, int]) -> GraphShapes:
    network = tuple(options.resize_to) if options.resize_to else tuple(input_size)
    if any(side % PATCH_SIZE for side in network):
        raise EdgedepthError(
            f"network input {network[0]}×{network[1]} is not a multiple of {PATCH_SIZE}: use a "
            "resize policy (fixed 350×350, keep-aspect) or backend.graph.resize_to"
        )
    if options.output_size == "input":
        output = tuple(input_size)
    elif options.output_size is not None:
        output = tuple(options.output_size)
    else:
        output = network
    return GraphShapes(tuple(input_size), network, output)  # type: ignore[arg-type]


class DepthGraph(nn.Module):
    """The network with the configured pre/post processing around it: what gets exported, and
    what the ``torch`` runtime runs (so both compute the same function).

    With an ``input_size`` the graph is static (for export): the interpolated position embedding
    becomes a constant. Without one it takes any size (the torch runtime) and interpolates the
    position embedding per call, as the official code does; the numbers are the same."""

    def __init__(
        self,
        model: DepthAnythingV2,
        options: GraphOptions,
        input_size: tuple[int, int] | None,
    ):
        super().__init__()
        if options.invert and model.config.kind == "metric":
            raise EdgedepthError("graph.invert applies to relative models only (metric is metres)")
        self.model = model
        self.options = options
        self.shapes = graph_shapes(options, input_size) if input_size is not None else None
        if self.shapes is not None:
            patch_h, patch_w = (side // PATCH_SIZE for side in self.shapes.network_size)
            model.pretrained.freeze_input_size(patch_h, patch_w)
        if options.attention == "per-head":
            split_attention_per_head(model)
        self.register_buffer("mean", torch.tensor(MEAN_255).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD_255).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        align = self.options.align_corners
        shapes = self.shapes or graph_shapes(self.options, tuple(image.shape[-2:]))
        if tuple(image.shape[-2:]) != shapes.network_size:
            image = F.interpolate(
                image, size=shapes.network_size, mode="bilinear", align_corners=align
            )
        if self.options.normalize:
            image = (image - self.mean) / self.std
        depth = self.model(image)
        if shapes.output_size != shapes.network_size:
            depth = F.interpolate(
                depth, size=shapes.output_size, mode="bilinear", align_corners=align
            )
        if self.options.invert:
            low = depth.amin(dim=(2, 3), keepdim=True)
            high = depth.amax(dim=(2, 3), keepdim=True)
            depth = 1.0 - (depth - low) / torch.clamp(high - low, min=1e-12)
        return depth


def export_onnx(graph: DepthGraph, path: Path) -> None:
    """Export with static shapes (TorchScript exporter: one plain graph, folded constants)."""
    if graph.shapes is None:
        raise ValueError("export needs a DepthGraph built for a fixed input size")
    height, width = graph.shapes.input_size
    dummy = torch.zeros(1, 3, height, width)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python-level shape checks; shapes are static by design.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # TorchScript export on purpose: one flat static graph, as QNN and AI Hub want it.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph.eval(),
            (dummy,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=graph.options.opset,
            dynamo=False,
            do_constant_folding=True,
        )


def tool_versions() -> dict[str, str]:
    import onnxruntime

    versions = {
        "edgedepth": edgedepth.__version__,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }
    try:
        import onnx

        versions["onnx"] = onnx.__version__
    except ImportError:
        pass
    return versions


def graph_manifest(
    config: DAv2Config, options: GraphOptions, shapes: GraphShapes, weights_id: str
) -> Manifest:
    """What a consumer of the exported graph needs to know (also the deploy tool's manifest)."""
    kind = output_kind(config, options)
    value_range: list[float] | None = (
        [0.0, config.max_depth] if kind is DepthKind.METRIC_METERS else None
    )
    if kind is DepthKind.RELATIVE_DEPTH:
        value_range = [0.0, 1.0]
    return Manifest.model_validate({
        "format": EXPORT_FORMAT,
        "model": {"family": "DepthAnythingV2", **dataclasses.asdict(config)},
        "weights_sha256": weights_id,
        "depth_kind": kind.value,
        "inputs": [
            {
                "name": INPUT_NAME,
                "shape": [1, 3, *shapes.input_size],
                "dtype": "float32",
                "layout": "NCHW RGB",
                "range": [0, 255] if options.normalize else "ImageNet-normalised",
            }
        ],
        "outputs": [
            {
                "name": OUTPUT_NAME,
                "shape": [1, 1, *shapes.output_size],
                "dtype": "float32",
                "range": value_range,
                "unit": "m" if kind is DepthKind.METRIC_METERS else None,
            }
        ],
        "graph": json.loads(options.model_dump_json()),
        "network_size": list(shapes.network_size),
        "tools": tool_versions(),
    })  # fmt: skip


def export_graph(
    model: DepthAnythingV2,
    options: GraphOptions,
    input_size: tuple[int, int],
    path: Path,
    weights_id: str,
) -> Manifest:
    """Export the graph of ``model`` for ``input_size`` to ``path`` (a bar with an estimate
    while it runs); its manifest. ``weights_id``: the weights' sha256 (or random seed)."""
    graph = DepthGraph(model, options, input_size)
    started = time.perf_counter()
    height, width = input_size
    what = f"{model.config.encoder} {model.config.kind} at {height}×{width}"
    parameters = sum(parameter.numel() for parameter in model.parameters())
    with long_call(f"exporting {what} to ONNX, once for this size", "export", what, parameters):
        export_onnx(graph, path)
    assert graph.shapes is not None
    logging.getLogger("edgedepth").info(
        "exported %s in %.1f s", what, time.perf_counter() - started
    )
    return graph_manifest(model.config, options, graph.shapes, weights_id)
