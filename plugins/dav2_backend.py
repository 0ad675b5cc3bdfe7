"""``dav2-relative`` and ``dav2-metric``: DepthAnythingV2 on ONNX Runtime (CPU), on the QNN
execution provider (Snapdragon HTP), or on PyTorch.

From a checkpoint (official ``.pth`` or Hugging Face ``*-hf``), the model is built with torch and
exported to a static-shape ONNX graph per input size (cached by checkpoint content, graph options
and size). From a ready model (``model: model.onnx``, an EPContext model or a ``edgedepth
deploy`` folder) no torch is needed: the Windows-on-Arm path.

The backend takes float32 RGB on the 0–255 scale (:class:`edgedepth.stages.Backend`); with
``graph.normalize`` the ImageNet normalisation (of RGB / 255) is inside the graph.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

import edgedepth
from edgedepth.config import ConfigPath, StrictModel
from edgedepth.depth_graph import (
    INPUT_NAME,
    OUTPUT_NAME,
    GraphOptions,
    image_tensor,
    read_manifest,
)
from edgedepth.errors import EdgedepthError
from edgedepth.frame import DepthKind
from edgedepth.ort_session import (
    QnnOptions,
    cpu_session,
    is_context_model,
    qnn_has_npu,
    qnn_session,
)
from edgedepth.stages import BuildContext

log = logging.getLogger("edgedepth")
#: Outside the logger hierarchy and above every level: reloading a model says nothing again.
_SILENT = logging.Logger("edgedepth.reload", logging.CRITICAL + 1)

Runtime = Literal["auto", "onnx-cpu", "qnn", "torch"]


class DAv2Options(StrictModel):
    #: Official .pth, .safetensors or a Hugging Face *-hf folder. Absent: the official file for
    #: (encoder, dataset) from the cache, downloaded if missing and reachable.
    checkpoint: ConfigPath | None = None
    #: A ready ONNX / EPContext model or an `edgedepth deploy` folder: no torch needed.
    model: ConfigPath | None = None
    #: Random weights instead of a checkpoint (demos and tests only: the depth means nothing).
    random_weights: bool = False
    #: vits | vitb | vitl; inferred from the checkpoint when absent (vits for random weights).
    encoder: Literal["vits", "vitb", "vitl"] | None = None
    #: Metric models: which official checkpoint (hypersim: indoor 20 m, vkitti: outdoor 80 m).
    dataset: Literal["hypersim", "vkitti"] = "hypersim"
    #: Metric models: override the checkpoint's max_depth (metres).
    max_depth: float | None = Field(None, gt=0)
    runtime: Runtime = "auto"
    #: ONNX Runtime CPU threads (default: one per core).
    threads: int | None = Field(None, ge=1)
    graph: GraphOptions = Field(default_factory=GraphOptions)
    qnn: QnnOptions = Field(default_factory=QnnOptions)
    #: Seed of ``random_weights``.
    seed: int = 0
    #: onnx-cpu / qnn: sessions kept open for different input sizes (keep-aspect gives photos
    #: of different sizes their own); beyond this the least recently used is closed (its
    #: export stays cached on disk).
    max_shapes: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _check(self) -> DAv2Options:
        if self.model is not None and (self.checkpoint is not None or self.random_weights):
            raise ValueError("give either model (a ready ONNX) or checkpoint/random_weights")
        if self.model is not None and self.runtime == "torch":
            raise ValueError("runtime torch needs a checkpoint, not a ready ONNX model")
        if self.random_weights and self.checkpoint is not None:
            raise ValueError("random_weights and checkpoint exclude each other")
        return self


def _resolve_model_file(path: Path) -> tuple[Path, dict[str, Any]]:
    """A model file, or a folder from the exporter / deploy tool (its manifest names the file)."""
    if not path.exists():
        raise EdgedepthError(f"model: file not found: {path}")
    if path.is_file():
        return path, read_manifest(path.parent)
    manifest = read_manifest(path)
    for name in (manifest.get("run_model"), "model_ctx.onnx", "model.onnx"):
        if name and (path / name).exists():
            return path / name, manifest
    raise EdgedepthError(f"model: {path} holds no model.onnx (nor a manifest naming one)")


def load_dav2(
    options: DAv2Options, kind: str, cache_dir: Path, announce: bool = True
) -> tuple[Any, str]:
    """The torch model the options describe and an id of its weights (checkpoint sha256):
    random weights, the given checkpoint, or the official one (fetched into the cache).
    ``announce``: log what was loaded and warn about it (once per run, not on reloads)."""
    from dataclasses import replace

    from edgedepth.models import dav2_checkpoint as ckpt
    from edgedepth.models.dav2 import ENCODERS, config_for

    say = log if announce else _SILENT
    if options.random_weights:
        say.warning("backend: random weights (random_weights: true): the depth means nothing")
        config = config_for(options.encoder or "vits", kind, options.max_depth or 20.0)  # type: ignore[arg-type]
        return ckpt.random_model(config, options.seed), f"random-seed{options.seed}"
    path = (
        Path(options.checkpoint)
        if options.checkpoint is not None
        else ckpt.fetch_official(kind, options.encoder or "vits", options.dataset, cache_dir)  # type: ignore[arg-type]
    )
    state, info = ckpt.read_checkpoint(path)
    if info.kind is not None and info.kind != kind:
        raise ckpt.CheckpointError(
            f"{path} is a {info.kind} checkpoint; use backend type dav2-{info.kind}"
        )
    if info.kind is None:
        # Relative and metric heads have the same weights: only the name or config.json tells.
        say.warning(
            "backend: %s does not say whether it is a relative or a metric model (not an "
            "official file name, no config.json): using dav2-%s as the backend type says; if it "
            "is the other kind, change backend.type%s",
            path,
            kind,
            " (and check backend.max_depth / dataset)" if kind == "metric" else "",
        )
    config = ckpt.infer_config(state, info)
    official = ENCODERS.get(config.encoder)
    if official is not None and (config.tapped_blocks, config.num_heads) != (
        official.tapped_blocks,
        official.num_heads,
    ):
        say.info(
            "backend: %s/config.json gives blocks %s and %d heads (official %s: blocks %s, %d "
            "heads): following config.json",
            path,
            list(config.tapped_blocks),
            config.num_heads,
            config.encoder,
            list(official.tapped_blocks),
            official.num_heads,
        )
    if options.encoder is not None and config.encoder != options.encoder:
        config = config_for(options.encoder)  # load_model lists the mismatched keys
    max_depth = options.max_depth or info.max_depth or ckpt.default_max_depth(options.dataset)
    config = replace(config, kind=kind, max_depth=max_depth)  # type: ignore[arg-type]
    model = ckpt.load_model(state, config, path)
    say.info(
        "backend: DepthAnythingV2 %s %s from %s%s",
        config.encoder,
        kind,
        path,
        f" (max_depth {max_depth:g} m)" if kind == "metric" else "",
    )
    return model, ckpt.file_sha256(path)


class DAv2Backend:
    """Runs one graph per input size. Frames of different sizes (keep-aspect on photos of
    different sizes, a camera that changes mode) each get a static graph for their size,
    exported once and cached on disk; up to ``max_shapes`` sessions stay open (least recently
    used closed first). On ``qnn`` every new size is a QNN compile. The torch runtime takes any
    size directly. A ready ``model:`` has the one size it was exported for."""

    def __init__(self, options: DAv2Options, context: BuildContext, kind: str) -> None:
        self.options = options
        self.kind = kind
        self.cache_dir = context.cache_dir
        first_size = tuple(context.input_size or (518, 518))
        self.sessions: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self.sizes_seen: set[tuple[int, int]] = set()
        self.graph: Any = None  # the torch runtime's module
        self.model_path: Path | None = None  # a ready model
        if options.model is not None:
            model_path, manifest = _resolve_model_file(Path(options.model))
            self.normalize_in_graph = manifest.get("graph", {}).get(
                "normalize", options.graph.normalize
            )
            self.depth_kind = DepthKind(
                manifest.get("depth_kind")
                or (DepthKind.METRIC_METERS if kind == "metric" else DepthKind.RELATIVE_DISPARITY)
            )
            self.runtime = self._resolve_runtime(is_context_model(model_path))
            self.model_path = model_path
            self.session = self._open_session(model_path, context_dir=None)
            model_input = self.session.get_inputs()[0]
            self.input_name = model_input.name
            self.output_name = self.session.get_outputs()[0].name
            fixed = tuple(model_input.shape[-2:])
            self.fixed_size = fixed if all(isinstance(side, int) for side in fixed) else None
            self._check_fixed_size(first_size, first=True)  # type: ignore[arg-type]
        else:
            self._from_checkpoint(first_size)  # type: ignore[arg-type]

    # --- building ---------------------------------------------------------------------------------

    def _from_checkpoint(self, first_size: tuple[int, int]) -> None:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise EdgedepthError(
                "building DepthAnythingV2 from a checkpoint needs PyTorch (pip install "
                "'edgedepth[torch]'); without it, use a ready model: backend.model: model.onnx "
                "from `edgedepth deploy export`"
            ) from None
        from edgedepth.models.dav2_export import DepthGraph, graph_shapes, output_kind

        model, self.weights_id = load_dav2(self.options, self.kind, self.cache_dir)
        self.model_config = model.config
        self.normalize_in_graph = self.options.graph.normalize
        self.depth_kind = output_kind(model.config, self.options.graph)
        self.input_name, self.output_name = INPUT_NAME, OUTPUT_NAME
        if self.options.runtime == "torch":
            graph_shapes(self.options.graph, first_size)  # a bad size fails now, not mid-run
            self._torch_graph(DepthGraph(model, self.options.graph, None))
            return
        self.runtime = self._resolve_runtime(context_model=False)
        self._session_for(first_size, model)

    def _torch_graph(self, graph: Any) -> None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.graph = graph.to(device).eval()
        self.device = device
        self.runtime = "torch"
        self.runtime_description = f"torch ({device})"
        log.info("backend: runtime torch on %s", device)

    def _resolve_runtime(self, context_model: bool) -> str:
        runtime = self.options.runtime
        if runtime == "auto":
            runtime = "qnn" if context_model or qnn_has_npu() else "onnx-cpu"
            log.info(
                "backend: runtime auto → %s (%s)",
                runtime,
                "a QNN context model"
                if context_model
                else "QNN EP has an NPU"
                if runtime == "qnn"
                else "no QNN NPU on this machine",
            )
        if context_model and runtime != "qnn":
            raise EdgedepthError(
                f"{self.options.model} is a QNN context model: it needs runtime qnn"
            )
        self.runtime_description = runtime
        return runtime

    def _open_session(self, model_path: Path, context_dir: Path | None) -> Any:
        if self.runtime != "qnn":
            return cpu_session(model_path, self.options.threads)
        cache = None
        if not is_context_model(model_path):
            folder = context_dir or self._qnn_cache_dir(model_path, self.cache_dir)
            cache = folder / f"{self.options.qnn.context_tag}_ctx.onnx"
        return qnn_session(model_path, self.options.qnn, cache)

    def _session_for(self, size: tuple[int, int], model: Any = None) -> Any:
        """The open session for this input size: reused, reopened from the export cache, or
        exported (and on qnn compiled) on first use."""
        from edgedepth.models.dav2_export import cached_export, export_folder, is_exported

        session = self.sessions.get(size)
        if session is not None:
            self.sessions.move_to_end(size)
            return session
        folder = export_folder(
            self.model_config, self.weights_id, self.options.graph, size, self.cache_dir
        )
        if self.sizes_seen and size not in self.sizes_seen:
            log.info(
                "backend: new input size %d×%d: %s%s",
                *size,
                "using its cached export" if is_exported(folder) else "exporting a graph for it",
                "; compiling it for the HTP (each new input size is a QNN compile; a fixed "
                "resize policy avoids them)"
                if self.runtime == "qnn"
                else "",
            )
        if not is_exported(folder):
            # The torch model is only kept while exporting: reloaded for a new size.
            model = model or load_dav2(self.options, self.kind, self.cache_dir, announce=False)[0]
            cached_export(model, self.weights_id, self.options.graph, size, self.cache_dir)
        session = self._open_session(folder / "model.onnx", context_dir=folder)
        self.sessions[size] = session
        self.sizes_seen.add(size)
        if len(self.sessions) > self.options.max_shapes:
            closed, _ = self.sessions.popitem(last=False)
            log.debug("backend: closed the session for %d×%d (max_shapes)", *closed)
        return session

    def _check_fixed_size(self, size: tuple[int, int], first: bool) -> None:
        if self.fixed_size is None or size == self.fixed_size:
            return
        height, width = self.fixed_size
        which = "the resize policy delivers" if first else "this frame's backend input is"
        raise EdgedepthError(
            f"{self.model_path} takes {height}×{width} images but {which} "
            f"{size[0]}×{size[1]}: set preprocess.resize (fixed {width}×{height}, or none "
            "with frames of that size for a graph that resizes inside), or give "
            "backend.checkpoint instead of model to get a graph per input size"
        )

    @staticmethod
    def _qnn_cache_dir(model_path: Path, cache_dir: Path) -> Path:
        digest = hashlib.sha256()
        with open(model_path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        return cache_dir / "qnn" / f"{model_path.stem}-{digest.hexdigest()[:16]}"

    # --- running ----------------------------------------------------------------------------------

    def infer(self, image: np.ndarray) -> np.ndarray:
        """float32 (or uint8) H×W×3 RGB on the 0–255 scale → depth, at this image's size."""
        size = (int(image.shape[0]), int(image.shape[1]))
        tensor = image_tensor(image, self.normalize_in_graph)
        if self.graph is not None:
            import torch

            if size not in self.sizes_seen:
                if self.sizes_seen:
                    log.info("backend: new input size %d×%d", *size)
                self.sizes_seen.add(size)
            with torch.inference_mode():
                depth = self.graph(torch.from_numpy(tensor).to(self.device))
            return depth[0, 0].float().cpu().numpy()
        if self.model_path is not None:
            self._check_fixed_size(size, first=False)
            session = self.session
        else:
            session = self._session_for(size)
        (depth,) = session.run([self.output_name], {self.input_name: tensor})
        return depth[0, 0]

    def close(self) -> None:
        self.sessions.clear()
        self.session = None
        self.graph = None


def relative_backend(options: DAv2Options, context: BuildContext) -> DAv2Backend:
    return DAv2Backend(options, context, "relative")


def metric_backend(options: DAv2Options, context: BuildContext) -> DAv2Backend:
    return DAv2Backend(options, context, "metric")


@edgedepth.hookimpl
def register_backends(register):
    register(
        "dav2-relative",
        DAv2Options,
        relative_backend,
        description="DepthAnythingV2 relative (disparity; invert for LPCVC), ONNX/QNN/torch",
    )
    register(
        "dav2-metric",
        DAv2Options,
        metric_backend,
        description="DepthAnythingV2 metric (metres), ONNX/QNN/torch",
    )
