"""``dav2-relative`` and ``dav2-metric``: DepthAnythingV2 on ONNX Runtime (the CPU, float or int8),
on the QNN execution provider (Snapdragon HTP), or on PyTorch.

On the ONNX runtimes this is a :class:`~edgedepth.runtime.onnx_backend.DepthModel` for the
generic :class:`~edgedepth.runtime.onnx_backend.OnnxBackend`, which owns the sessions, the NPU,
int8, the per-size caches, cancel, ``check`` and ``deploy``. What is DepthAnythingV2's is here:
its weights (an official ``.pth``, a Hugging Face ``*-hf`` folder, the official file fetched into
the cache, or random ones), a static graph exported per input size (cached by checkpoint content,
graph options and size: a cached export starts without torch and without reading the
checkpoint), and the layouts of ready DAv2 ONNX files (:mod:`edgedepth.models.dav2.layouts`:
``edgedepth``, Hugging Face, Qualcomm AI Hub Models). ``runtime: torch`` runs the PyTorch model
itself, any size, no export.

The backend takes float32 RGB on the 0–255 scale; with ``graph.normalize`` the ImageNet
normalisation (of RGB / 255) is inside the graph.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

import edgedepth
from edgedepth.api.errors import ConfigError, EdgedepthError
from edgedepth.api.frame import DepthKind
from edgedepth.api.options import InputPath
from edgedepth.api.stages import BuildContext
from edgedepth.models.dav2 import weights
from edgedepth.models.dav2.graph import EXPORT_FORMAT, GraphOptions, image_tensor
from edgedepth.models.dav2.layouts import OnnxLayout, detect_layout
from edgedepth.models.dav2.weights import ModelKind
from edgedepth.runtime.cache import check_cache_folder
from edgedepth.runtime.exports import GRAPH_CACHE, export_folder, is_exported
from edgedepth.runtime.manifest import Manifest
from edgedepth.runtime.onnx_backend import GraphSignature, OnnxBackendFactory
from edgedepth.runtime.options import OnnxOptions
from edgedepth.runtime.placement import targets_htp

log = logging.getLogger("edgedepth")

NEEDS_TORCH = (
    "building DepthAnythingV2 from a checkpoint needs PyTorch (pip install 'edgedepth[torch]'); "
    "without it, use a ready model: backend.model: model.onnx from `edgedepth deploy export`"
)


class DAv2Options(OnnxOptions):
    checkpoint: InputPath | None = None
    """Official .pth, .safetensors or a Hugging Face *-hf folder. Absent: the official file for
    (encoder, dataset) from the cache, downloaded if missing and reachable."""
    random_weights: bool | Literal["if-offline"] = False
    """Random weights instead of a checkpoint (demos and tests only: the depth means nothing).
    ``if-offline``: the official checkpoint when it is cached or can be downloaded, random
    weights otherwise (a warning, and a caption on the video and the window)."""
    encoder: Literal["vits", "vitb", "vitl"] | None = None
    """vits | vitb | vitl; inferred from the checkpoint when absent (vits for random weights)."""
    dataset: Literal["hypersim", "vkitti"] = "hypersim"
    """Metric models: which official checkpoint (hypersim: indoor 20 m, vkitti: outdoor 80 m)."""
    max_depth: float | None = Field(None, gt=0)
    """Metric models: override the checkpoint's max_depth (metres)."""
    runtime: Literal["auto", "onnx-cpu", "qnn", "torch"] = "auto"  # type: ignore[assignment]
    """auto (the NPU when there is one, else the CPU) | onnx-cpu | qnn | torch."""
    graph: GraphOptions = Field(default_factory=GraphOptions)
    """What goes inside the exported graph (pre/post processing)."""
    seed: int = 0
    """Seed of ``random_weights``."""

    @model_validator(mode="after")
    def _check(self) -> DAv2Options:
        if self.model is not None and (self.checkpoint is not None or self.random_weights):
            raise ValueError("give either model (a ready ONNX) or checkpoint/random_weights")
        if self.model is not None and self.runtime == "torch":
            raise ValueError("runtime torch needs a checkpoint, not a ready ONNX model")
        if self.random_weights and self.checkpoint is not None:
            raise ValueError("random_weights and checkpoint exclude each other")
        return self


def require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise EdgedepthError(NEEDS_TORCH) from None


def depth_kind_of(kind: ModelKind, graph: GraphOptions) -> DepthKind:
    """What the graph's numbers mean, from the backend type and graph options."""
    if kind == "metric":
        return DepthKind.METRIC_METERS
    return DepthKind.RELATIVE_DEPTH if graph.invert else DepthKind.RELATIVE_DISPARITY


class _Unresolved:
    """The weights are not chosen yet (nothing downloaded, nothing warned)."""


class DAv2Model:
    """DepthAnythingV2 for :class:`~edgedepth.runtime.onnx_backend.OnnxBackend`: a ready file in
    one of its layouts, or a graph per input size built from the weights (a
    :class:`~edgedepth.runtime.onnx_backend.GraphBuilder`)."""

    def __init__(self, options: DAv2Options, context: BuildContext, kind: ModelKind) -> None:
        self.options = options
        self.context = context
        self.kind = kind
        #: A ready model's is what the backend type says; an export's manifest says its own.
        self.depth_kind = depth_kind_of(kind, options.graph)
        self.layout: OnnxLayout | None = None
        self._checkpoint: Path | _Unresolved | None = _Unresolved()

    # --- the graph's layout ------------------------------------------------------------------

    @property
    def multiple_of(self) -> int:
        return self.layout.multiple_of if self.layout is not None else 1

    def bind(self, graph: GraphSignature) -> None:
        normalize = graph.manifest.graph.get("normalize", self.options.graph.normalize)
        self.layout = detect_layout(list(graph.inputs), list(graph.outputs), normalize)
        if self.options.model is not None:
            log.info("backend: %s (%s layout)", graph.path, self.layout.name)

    def inputs(self, image: np.ndarray) -> dict[str, np.ndarray]:
        assert self.layout is not None
        return {self.layout.input_name: self.layout.tensor(image)}

    def depth(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        assert self.layout is not None
        return self.layout.depth(outputs[self.layout.output_name])

    # --- graphs from the weights ---------------------------------------------------------------

    def checkpoint(self) -> Path | None:
        """The checkpoint the weights come from (None: random weights), chosen once: the official
        file is downloaded now if missing, or random weights said (and noted on every picture)."""
        if isinstance(self._checkpoint, _Unresolved):
            self._checkpoint = weights.resolved_checkpoint(
                self.options, self.kind, self.context.cache_dir
            )
            if self._checkpoint is None:
                self.context.notes.append(weights.RANDOM_WEIGHTS_NOTE)
        return self._checkpoint

    def graph_options(self, htp: bool) -> GraphOptions:
        return self.options.graph.for_target(htp)

    def graph_key(self, htp: bool) -> dict[str, Any]:
        key = weights.model_key(self.options, self.kind, self.context.cache_dir, self.checkpoint())
        return {
            "name": f"dav2-{self.kind}",
            "model": dataclasses.asdict(key),
            "graph": self.graph_options(htp).model_dump(mode="json"),
            "format": EXPORT_FORMAT,
        }

    def export(self, size: tuple[int, int], path: Path, htp: bool) -> Manifest:
        loaded = self._load()
        from edgedepth.models.dav2.export import export_graph

        return export_graph(loaded.model, self.graph_options(htp), size, path, loaded.key.weights)

    def _load(self, announce: bool = True) -> Any:
        """The torch model (:class:`~edgedepth.models.dav2.loading.LoadedDAv2`)."""
        require_torch()
        from edgedepth.models.dav2.loading import build_dav2

        return build_dav2(
            self.options, self.kind, self.context.cache_dir, self.checkpoint(), announce
        )

    def check(self, context: BuildContext) -> None:
        """What the run opens first: the weights (the official file cached, or reachable for
        download), the checkpoint read and matched to the model when no graph for this size is
        cached, and the cache it would write to."""
        from edgedepth.system.network import unreachable

        options = self.options
        if options.model is not None:
            return
        if options.checkpoint is None and options.random_weights is not True:
            encoder = options.encoder or "vits"
            official = weights.official_path(self.kind, encoder, options.dataset, context.cache_dir)
            if not official.exists():
                # In the run's order: the folder it is downloaded into, then the download.
                check_cache_folder(official.parent, weights.CHECKPOINT_CACHE)
                url = weights.official_url(self.kind, encoder, options.dataset)
                reason = unreachable(url, timeout=5.0)
                if reason is not None and options.random_weights != "if-offline":
                    raise EdgedepthError(weights.cannot_download(official, url, reason))
                if reason is None:  # downloaded at the start of the run, then exported
                    check_cache_folder(context.cache_dir / "exports", GRAPH_CACHE)
                    require_torch()
                    return
                self._checkpoint = None  # if-offline: random weights, as the run will
        size = context.input_size
        key = self.graph_key(targets_htp(options))
        if size is not None and is_exported(export_folder(key, tuple(size), context.cache_dir)):  # type: ignore[arg-type]
            return
        self._load(announce=False)  # reads the checkpoint and checks it fits the model
        check_cache_folder(context.cache_dir / "exports", GRAPH_CACHE)


class DAv2TorchBackend:
    """``runtime: torch``: the PyTorch model itself (CUDA when there is one), any input size."""

    def __init__(self, options: DAv2Options, context: BuildContext, kind: ModelKind) -> None:
        model = DAv2Model(options, context, kind)
        loaded = model._load()
        import torch

        from edgedepth.models.dav2.export import DepthGraph, graph_shapes, output_kind

        config = loaded.model.config
        self.depth_kind = output_kind(config, options.graph)
        self.depth_range = (0.0, float(config.max_depth)) if kind == "metric" else None
        graph_shapes(options.graph, tuple(context.input_size or (518, 518)))  # fails now
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        graph = DepthGraph(loaded.model, options.graph.for_target(htp=False), None)
        self.graph = graph.to(self.device).eval()
        self.normalize_in_graph = options.graph.normalize
        self.sizes: set[tuple[int, int]] = set()
        log.info("backend: runtime torch on %s", self.device)

    def infer(self, image: np.ndarray) -> np.ndarray:
        import torch

        size = (int(image.shape[0]), int(image.shape[1]))
        if self.sizes and size not in self.sizes:
            log.info("backend: new input size %d×%d", *size)
        self.sizes.add(size)
        tensor = torch.from_numpy(image_tensor(image, self.normalize_in_graph)).to(self.device)
        with torch.inference_mode():
            depth = self.graph(tensor)
        return depth[0, 0].float().cpu().numpy()

    def close(self) -> None:
        self.graph = None


@dataclass(frozen=True)
class DAv2Backends(OnnxBackendFactory):
    """The ONNX runtimes through :class:`~edgedepth.runtime.onnx_backend.OnnxBackend`;
    ``runtime: torch`` through :class:`DAv2TorchBackend`."""

    kind: ModelKind = "relative"

    def __call__(self, options: DAv2Options, context: BuildContext) -> Any:  # type: ignore[override]
        if options.runtime == "torch":
            return DAv2TorchBackend(options, context, self.kind)
        return super().__call__(options, context)

    def check(self, options: DAv2Options, context: BuildContext) -> None:  # type: ignore[override]
        if options.runtime == "torch" and importlib.util.find_spec("torch") is None:
            raise ConfigError("runtime: torch needs PyTorch: pip install 'edgedepth[torch]'")
        super().check(options, context)


def _models(kind: ModelKind) -> Any:
    return lambda options, context: DAv2Model(options, context, kind)


@edgedepth.hookimpl
def register_backends(register: edgedepth.Register) -> None:
    register(
        "dav2-relative",
        DAv2Options,
        DAv2Backends(_models("relative"), "relative"),
        description="DepthAnythingV2 relative (disparity; invert for LPCVC), ONNX/QNN/torch",
    )
    register(
        "dav2-metric",
        DAv2Options,
        DAv2Backends(_models("metric"), "metric"),
        description="DepthAnythingV2 metric (metres), ONNX/QNN/torch",
    )
