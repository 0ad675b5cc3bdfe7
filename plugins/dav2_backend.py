"""``dav2-relative`` and ``dav2-metric``: DepthAnythingV2 on ONNX Runtime (CPU), on the QNN
execution provider (Snapdragon HTP), or on PyTorch.

From a checkpoint (official ``.pth`` or Hugging Face ``*-hf``), the model is built with torch and
exported to ONNX once (cached by checkpoint content and graph options). From a ready model
(``model: model.onnx``, an EPContext model or a ``edgedepth deploy`` folder) no torch is needed:
the Windows-on-Arm path.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from pydantic import Field, model_validator

import edgedepth
from edgedepth.config import ConfigPath, StrictModel
from edgedepth.depth_graph import GraphOptions, image_tensor, read_manifest
from edgedepth.errors import EdgedepthError
from edgedepth.frame import DepthKind
from edgedepth.ort_session import (
    QnnOptions,
    cpu_session,
    is_context_model,
    no_npu_reason,
    qnn_has_npu,
    qnn_session,
    qnn_target,
)
from edgedepth.stages import BuildContext

log = logging.getLogger("edgedepth")

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


def _reference_model(folder: Path, model_path: Path, manifest: dict[str, Any]) -> Path | None:
    """The float model a deploy folder keeps beside its context binary (CPU fallback); its
    manifest names it relative to the folder."""
    name = manifest.get("reference_model")
    reference = folder / name if name else None
    if reference is None or reference.resolve() == model_path.resolve():
        return None
    return reference if reference.is_file() and not is_context_model(reference) else None


def load_dav2(options: DAv2Options, kind: str, cache_dir: Path) -> tuple[Any, str]:
    """The torch model the options describe and an id of its weights (checkpoint sha256):
    random weights, the given checkpoint, or the official one (fetched into the cache)."""
    from dataclasses import replace

    from edgedepth.models import dav2_checkpoint as ckpt
    from edgedepth.models.dav2 import config_for

    if options.random_weights:
        log.warning("backend: random weights (random_weights: true): the depth means nothing")
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
    config = ckpt.infer_config(state, info)
    if options.encoder is not None and config.encoder != options.encoder:
        config = config_for(options.encoder)  # load_model lists the mismatched keys
    max_depth = options.max_depth or info.max_depth or ckpt.default_max_depth(options.dataset)
    config = replace(config, kind=kind, max_depth=max_depth)  # type: ignore[arg-type]
    model = ckpt.load_model(state, config, path)
    log.info(
        "backend: DepthAnythingV2 %s %s from %s%s",
        config.encoder,
        kind,
        path,
        f" (max_depth {max_depth:g} m)" if kind == "metric" else "",
    )
    return model, ckpt.file_sha256(path)


class DAv2Backend:
    def __init__(self, options: DAv2Options, context: BuildContext, kind: str) -> None:
        self.options = options
        self.kind = kind
        self.input_size = context.input_size or (518, 518)
        self.session: Any = None
        self.graph: Any = None  # the torch runtime's module
        if options.model is not None:
            folder = Path(options.model) if Path(options.model).is_dir() else None
            model_path, manifest = _resolve_model_file(Path(options.model))
            self.normalize_in_graph = manifest.get("graph", {}).get(
                "normalize", options.graph.normalize
            )
            self.depth_kind = DepthKind(
                manifest.get("depth_kind")
                or (DepthKind.METRIC_METERS if kind == "metric" else DepthKind.RELATIVE_DISPARITY)
            )
            reference = _reference_model(folder or model_path.parent, model_path, manifest)
            self._open_session(model_path, context, context_dir=None, reference=reference)
        else:
            self._from_checkpoint(context)

    # --- building ---------------------------------------------------------------------------------

    def _from_checkpoint(self, context: BuildContext) -> None:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise EdgedepthError(
                "building DepthAnythingV2 from a checkpoint needs PyTorch (pip install "
                "'edgedepth[torch]'); without it, use a ready model: backend.model: model.onnx "
                "from `edgedepth deploy export`"
            ) from None
        from edgedepth.models.dav2_export import DepthGraph, cached_export, output_kind

        model, weights_id = load_dav2(self.options, self.kind, context.cache_dir)
        self.normalize_in_graph = self.options.graph.normalize
        self.depth_kind = output_kind(model.config, self.options.graph)
        if self.options.runtime == "torch":
            self._torch_graph(DepthGraph(model, self.options.graph, self.input_size))
            return
        folder = cached_export(
            model, weights_id, self.options.graph, self.input_size, context.cache_dir
        )
        self._open_session(folder / "model.onnx", context, context_dir=folder)

    def _torch_graph(self, graph: Any) -> None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.graph = graph.to(device).eval()
        self.device = device
        self.runtime_description = f"torch ({device})"
        log.info("backend: runtime torch on %s", device)

    def _open_session(
        self,
        model_path: Path,
        context: BuildContext,
        context_dir: Path | None,
        reference: Path | None = None,
    ) -> None:
        runtime = self.options.runtime
        context_model = is_context_model(model_path)
        if runtime == "auto":
            if qnn_has_npu():
                runtime, why = "qnn", f"NPU: {qnn_target().description}"
            elif context_model and reference is None:
                runtime, why = "qnn", "a QNN context model with no float model beside it"
            else:
                runtime, why = "onnx-cpu", f"no NPU: {no_npu_reason()}"
            log.info("backend: runtime auto → %s (%s)", runtime, why)
        if context_model and runtime != "qnn":
            if reference is None:
                raise EdgedepthError(f"{model_path} is a QNN context model: it needs runtime qnn")
            model_path, context_model = reference, False  # the float model it was compiled from
        if runtime == "qnn":
            try:
                self.session = self._qnn_session(model_path, context, context_dir, context_model)
            except EdgedepthError as failure:
                fallback = reference if context_model else model_path
                if self.options.runtime != "auto" or fallback is None:
                    raise
                log.warning(
                    "backend: runtime auto: no QNN session (%s); falling back to onnx-cpu", failure
                )
                runtime, model_path = "onnx-cpu", fallback
        if runtime == "onnx-cpu":
            self.session = cpu_session(model_path, self.options.threads)
        self.runtime_description = runtime
        # Setting ``terminate`` on these makes a running session.run return (see cancel()).
        self._run_options = ort.RunOptions()
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.output_name = self.session.get_outputs()[0].name
        expected = tuple(model_input.shape[-2:])
        if all(isinstance(side, int) for side in expected) and expected != tuple(self.input_size):
            raise EdgedepthError(
                f"{model_path} takes {expected[0]}×{expected[1]} images but the resize policy "
                f"delivers {self.input_size[0]}×{self.input_size[1]}: set preprocess.resize "
                f"(none for a graph that resizes inside, or fixed {expected[1]}×{expected[0]})"
            )

    def _qnn_session(
        self, model_path: Path, context: BuildContext, context_dir: Path | None, context_model: bool
    ) -> Any:
        cache = None
        if not context_model:
            folder = context_dir or self._qnn_cache_dir(model_path, context.cache_dir)
            cache = folder / f"{self.options.qnn.context_tag(qnn_target())}_ctx.onnx"
        return qnn_session(model_path, self.options.qnn, cache)

    @staticmethod
    def _qnn_cache_dir(model_path: Path, cache_dir: Path) -> Path:
        digest = hashlib.sha256()
        with open(model_path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        return cache_dir / "qnn" / f"{model_path.stem}-{digest.hexdigest()[:16]}"

    # --- running ----------------------------------------------------------------------------------

    def infer(self, image: np.ndarray) -> np.ndarray:
        tensor = image_tensor(image, self.normalize_in_graph)
        if self.graph is not None:
            import torch

            with torch.inference_mode():
                depth = self.graph(torch.from_numpy(tensor).to(self.device))
            return depth[0, 0].float().cpu().numpy()
        (depth,) = self.session.run(
            [self.output_name], {self.input_name: tensor}, self._run_options
        )
        return depth[0, 0]

    def cancel(self) -> None:
        """Make a running ONNX Runtime call return (from another thread, when the run stops).
        ORT checks the flag between nodes; a QNN graph runs as one node and finishes first."""
        run_options = getattr(self, "_run_options", None)
        if run_options is not None:
            run_options.terminate = True

    def close(self) -> None:
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
