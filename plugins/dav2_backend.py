"""``dav2-relative`` and ``dav2-metric``: DepthAnythingV2 on ONNX Runtime (CPU), on the QNN
execution provider (Snapdragon HTP), or on PyTorch.

From a checkpoint (official ``.pth`` or Hugging Face ``*-hf``), the model is built with torch and
exported to a static-shape ONNX graph per input size (cached by checkpoint content, graph options
and size); once exported, a run finds the export without torch and without reading the
checkpoint (its sha256 is remembered per file version). From a ready model (``model:
model.onnx``, an EPContext model, a ``edgedepth deploy`` folder, the ``onnx/model.onnx`` of a
Hugging Face repository or Qualcomm AI Hub Models' export; :mod:`edgedepth.models.onnx_layouts`
tells them apart) no torch is needed: the Windows-on-Arm path.

The backend takes float32 RGB on the 0–255 scale (:class:`edgedepth.stages.Backend`); with
``graph.normalize`` the ImageNet normalisation (of RGB / 255) is inside the graph.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from pydantic import Field, model_validator

import edgedepth
from edgedepth.config import ConfigPath, InputPath, StrictModel
from edgedepth.depth_graph import (
    INPUT_NAME,
    OUTPUT_NAME,
    GraphOptions,
    export_folder,
    image_tensor,
    is_exported,
    read_manifest,
    ready_model_file,
    reference_model,
)
from edgedepth.errors import ConfigError, EdgedepthError
from edgedepth.frame import DepthKind
from edgedepth.models.dav2_loading import build_dav2
from edgedepth.models.dav2_weights import (
    RANDOM_WEIGHTS_NOTE,
    model_key,
    resolved_checkpoint,
)
from edgedepth.models.onnx_layouts import OnnxLayout, detect_layout
from edgedepth.ort_runtime import OrtRuntime, SessionsBySize
from edgedepth.ort_session import cpu_session, is_context_model
from edgedepth.qnn import QnnOptions
from edgedepth.stages import BuildContext

log = logging.getLogger("edgedepth")

Runtime = Literal["auto", "onnx-cpu", "qnn", "torch"]


class DAv2Options(StrictModel):
    checkpoint: InputPath | None = None
    """Official .pth, .safetensors or a Hugging Face *-hf folder. Absent: the official file for
    (encoder, dataset) from the cache, downloaded if missing and reachable."""
    model: ConfigPath | None = None
    """A ready model, no torch needed: an ONNX / EPContext file, an `edgedepth deploy` folder,
    a Hugging Face ONNX repository (its onnx/model.onnx) or Qualcomm AI Hub Models' DAv2."""
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
    runtime: Runtime = "auto"
    """auto (the NPU when there is one, else the CPU) | onnx-cpu | qnn | torch."""
    precision: Literal["float32", "int8"] = "float32"
    """onnx-cpu: ``int8`` runs a dynamically quantised copy of the graph (int8 MatMuls, made
    once and cached beside it; ~1.4× faster on an AVX2 CPU, ~0.3 % from float). The HTP's own
    precision is ``qnn.precision``."""
    threads: int | None = Field(None, ge=1)
    """ONNX Runtime CPU threads (default: one per core)."""
    graph: GraphOptions = Field(default_factory=GraphOptions)
    """What goes inside the exported graph (pre/post processing)."""
    qnn: QnnOptions = Field(default_factory=QnnOptions)
    """The QNN execution provider (runtime qnn)."""
    seed: int = 0
    """Seed of ``random_weights``."""
    max_shapes: int = Field(4, ge=1)
    """onnx-cpu / qnn: sessions kept open for different input sizes (keep-aspect gives photos of
    different sizes their own); beyond this the least recently used is closed (its export stays
    cached on disk)."""

    @model_validator(mode="after")
    def _check(self) -> DAv2Options:
        if self.model is not None and (self.checkpoint is not None or self.random_weights):
            raise ValueError("give either model (a ready ONNX) or checkpoint/random_weights")
        if self.model is not None and self.runtime == "torch":
            raise ValueError("runtime torch needs a checkpoint, not a ready ONNX model")
        if self.random_weights and self.checkpoint is not None:
            raise ValueError("random_weights and checkpoint exclude each other")
        if self.precision == "int8" and self.runtime in ("qnn", "torch"):
            raise ValueError(
                f"precision int8 is for runtime onnx-cpu, not {self.runtime} (on the HTP: "
                "qnn.precision: quantized with a model from `edgedepth deploy quantize`)"
            )
        return self


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
        self.context = context
        first_size = tuple(context.input_size or (518, 518))
        self.sessions = SessionsBySize(options.max_shapes)
        self.ort = OrtRuntime(
            "onnx-cpu" if options.runtime == "torch" else options.runtime,
            options.qnn,
            self.cache_dir,
            options.precision,
            options.threads,
        )
        self.graph: Any = None  # the torch runtime's module
        self.model_path: Path | None = None  # a ready model
        #: The checkpoint the weights come from (None: random weights, or a ready model).
        self.checkpoint: Path | None = None
        #: (min, max) of the depth when known (metric: 0..max_depth); sinks size recordings by it.
        self.depth_range: tuple[float, float] | None = None
        # Setting ``terminate`` on these makes a running session.run return (see cancel()).
        self._run_options = ort.RunOptions()
        if options.model is not None:
            self._from_ready_model(Path(options.model), first_size)  # type: ignore[arg-type]
        else:
            self._from_checkpoint(first_size)  # type: ignore[arg-type]

    @property
    def runtime(self) -> str:
        """Where the graphs run: ``torch``, or the ONNX Runtime one (``auto`` resolved)."""
        return "torch" if self.graph is not None else self.ort.name

    # --- building ---------------------------------------------------------------------------------

    def _from_ready_model(self, given: Path, first_size: tuple[int, int]) -> None:
        model_path, manifest = ready_model_file(given)
        self.normalize_in_graph = manifest.get("graph", {}).get(
            "normalize", self.options.graph.normalize
        )
        self._output_from(manifest)
        folder = given if given.is_dir() else model_path.parent
        reference = reference_model(folder, model_path, manifest)
        context_model = is_context_model(model_path)
        self.ort.resolve(model_path if context_model else None, float_model=reference)
        if context_model and self.runtime != "qnn":
            model_path = reference  # type: ignore[assignment]  # the float model it came from
        self.model_path = model_path
        fallback = reference if context_model else model_path
        # The HTP takes static shapes only: a plain ONNX file's tensors are read on the CPU first.
        probe_on_cpu = self.runtime == "qnn" and not context_model
        self.session = (
            cpu_session(model_path, 1)
            if probe_on_cpu
            else self.ort.open(model_path, None, fallback)
        )
        self.layout: OnnxLayout = detect_layout(
            self.session.get_inputs(), self.session.get_outputs(), self.normalize_in_graph
        )
        self.input_name, self.output_name = self.layout.input_name, self.layout.output_name
        self.fixed_size = self.layout.fixed_size
        log.info("backend: %s (%s layout)", model_path, self.layout.name)
        self._check_fixed_size(first_size, first=True)  # type: ignore[arg-type]
        if probe_on_cpu:  # one QNN session, or one per input size for symbolic sizes
            self.session = self.ort.open(model_path, None, fallback) if self.fixed_size else None
            self._ready_session(first_size)  # type: ignore[arg-type]  # compiles now, not mid-run

    def _from_checkpoint(self, first_size: tuple[int, int]) -> None:
        self.normalize_in_graph = self.options.graph.normalize
        self.input_name, self.output_name = INPUT_NAME, OUTPUT_NAME
        # The weights are chosen once (downloaded, or random with a warning): builds for later
        # input sizes take the same, without another download attempt.
        self.checkpoint = resolved_checkpoint(self.options, self.kind, self.cache_dir)  # type: ignore[arg-type]
        if self.checkpoint is None:
            self.context.notes.append(RANDOM_WEIGHTS_NOTE)
        self.model_key = model_key(self.options, self.kind, self.cache_dir, self.checkpoint)  # type: ignore[arg-type]
        if self.options.runtime != "torch":
            self.ort.resolve()
            self.graph_options = self.options.graph.for_target(htp=self.runtime == "qnn")
            folder = export_folder(self.model_key, self.graph_options, first_size, self.cache_dir)
            if is_exported(folder):
                # Fast start: no torch, no checkpoint read; the export's manifest says the rest.
                self._describe_output(read_manifest(folder))
                self._session_for(first_size)
                return
        try:
            import torch  # noqa: F401
        except ImportError:
            raise EdgedepthError(
                "building DepthAnythingV2 from a checkpoint needs PyTorch (pip install "
                "'edgedepth[torch]'); without it, use a ready model: backend.model: model.onnx "
                "from `edgedepth deploy export`"
            ) from None
        from edgedepth.models.dav2_export import DepthGraph, graph_shapes, output_kind

        model = build_dav2(
            self.options,  # type: ignore[arg-type]
            self.kind,
            self.cache_dir,
            self.checkpoint,
            key=self.model_key,
        ).model
        self.depth_kind = output_kind(model.config, self.options.graph)
        if self.depth_kind is DepthKind.METRIC_METERS:
            self.depth_range = (0.0, float(model.config.max_depth))
        if self.options.runtime == "torch":
            graph_shapes(self.options.graph, first_size)  # a bad size fails now, not mid-run
            self._torch_graph(DepthGraph(model, self.options.graph.for_target(htp=False), None))
            return
        self._session_for(first_size, model)

    def _output_from(self, manifest: dict[str, Any]) -> None:
        """Depth kind and metric range from an export's manifest (a ready model without one:
        what the backend type says, range unknown)."""
        self.depth_kind = DepthKind(
            manifest.get("depth_kind")
            or (DepthKind.METRIC_METERS if self.kind == "metric" else DepthKind.RELATIVE_DISPARITY)
        )
        value_range = (manifest.get("outputs") or [{}])[0].get("range")
        if self.depth_kind is DepthKind.METRIC_METERS and isinstance(value_range, list):
            self.depth_range = (float(value_range[0]), float(value_range[1]))

    def _describe_output(self, manifest: dict[str, Any]) -> None:
        """Depth kind and metric range from a cached export's manifest."""
        self._output_from(manifest)
        model = manifest.get("model", {})
        log.info(
            "backend: DepthAnythingV2 %s %s (%s), cached export",
            model.get("encoder", "?"),
            self.kind,
            self.checkpoint or "random weights",
        )

    def _torch_graph(self, graph: Any) -> None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.graph = graph.to(device).eval()
        self.device = device
        log.info("backend: runtime torch on %s", device)

    def _ready_session(self, size: tuple[int, int]) -> Any:
        """A ready model's session: its one session, or on the HTP a static session per input
        size of a model with symbolic sizes (compiled on first use, ``max_shapes`` kept)."""
        self._check_fixed_size(size, first=False)
        if self.session is not None:
            return self.session
        session = self.sessions.get(size)
        if session is not None:
            return session
        if self.sessions.is_new(size):
            log.info(
                "backend: new input size %d×%d: compiling a graph of that size for the HTP", *size
            )
        assert self.model_path is not None
        session = self.ort.open(
            self.model_path,
            None,
            self.model_path,
            size=size,
            free_dimensions=self.layout.free_dimensions(size),
        )
        if self.runtime != "qnn":  # auto fell back to the CPU, which takes every size
            self.session = session
        else:
            self.sessions.add(size, session)
        return session

    def _session_for(self, size: tuple[int, int], model: Any = None) -> Any:
        """The open session for this input size: reused, reopened from the export cache, or
        exported (and on qnn compiled) on first use."""
        session = self.sessions.get(size)
        if session is not None:
            return session
        folder = export_folder(self.model_key, self.graph_options, size, self.cache_dir)
        exported = is_exported(folder)
        if self.sessions.is_new(size):
            log.info(
                "backend: new input size %d×%d: %s%s",
                *size,
                "using its cached export" if exported else "exporting a graph for it",
                "; compiling it for the HTP (each new input size is a QNN compile; a fixed "
                "resize policy avoids them)"
                if self.runtime == "qnn"
                else "",
            )
        if not exported:
            from edgedepth.models.dav2_export import cached_export

            # The torch model is only kept while exporting: reloaded for a new size.
            model = (
                model
                or build_dav2(
                    self.options,  # type: ignore[arg-type]
                    self.kind,
                    self.cache_dir,
                    self.checkpoint,
                    announce=False,
                    key=self.model_key,
                ).model
            )
            cached_export(model, self.model_key, self.graph_options, size, self.cache_dir)
        session = self.ort.open(folder / "model.onnx", folder, folder / "model.onnx")
        self.sessions.add(size, session)
        return session

    def _check_fixed_size(self, size: tuple[int, int], first: bool) -> None:
        which = "the resize policy delivers" if first else "this frame's backend input is"
        error = ConfigError if first else EdgedepthError
        if self.fixed_size is None:
            step = self.layout.multiple_of
            if size[0] % step == 0 and size[1] % step == 0:
                return
            raise error(
                f"{self.model_path} ({self.layout.name} layout) takes sides that are multiples "
                f"of {step} but {which} {size[0]}×{size[1]}: set preprocess.resize (keep-aspect, "
                f"the official preprocessing, or fixed with multiples of {step})"
            )
        if size == self.fixed_size:
            return
        height, width = self.fixed_size
        raise error(
            f"{self.model_path} takes {height}×{width} images but {which} "
            f"{size[0]}×{size[1]}: set preprocess.resize (fixed {width}×{height}, or none "
            "with frames of that size for a graph that resizes inside), or give "
            "backend.checkpoint instead of model to get a graph per input size"
        )

    # --- running ----------------------------------------------------------------------------------

    def infer(self, image: np.ndarray) -> np.ndarray:
        """float32 (or uint8) H×W×3 RGB on the 0–255 scale → depth, at this image's size."""
        size = (int(image.shape[0]), int(image.shape[1]))
        if self.model_path is not None:  # a ready model, in its own layout
            session = self._ready_session(size)
            tensor = self.layout.tensor(image)
            (output,) = session.run(
                [self.output_name], {self.input_name: tensor}, self._run_options
            )
            return self.layout.depth(output)
        tensor = image_tensor(image, self.normalize_in_graph)
        if self.graph is not None:
            import torch

            if self.sessions.is_new(size):
                log.info("backend: new input size %d×%d", *size)
            self.sessions.seen.add(size)
            with torch.inference_mode():
                depth = self.graph(torch.from_numpy(tensor).to(self.device))
            return depth[0, 0].float().cpu().numpy()
        session = self._session_for(size)
        (depth,) = session.run([self.output_name], {self.input_name: tensor}, self._run_options)
        return depth[0, 0]

    def cancel(self) -> None:
        """Make a running ONNX Runtime call return (from another thread, when the run stops).
        ORT checks the flag between nodes; a QNN graph runs as one node and finishes first."""
        self._run_options.terminate = True

    def close(self) -> None:
        self.sessions.clear()
        self.session = None
        self.graph = None


def check_dav2(options: DAv2Options, context: BuildContext, kind: str) -> None:
    """What ``edgedepth check`` can tell without loading a model: the runtime's package, the
    official checkpoint (cached, or reachable for download), a ready model's input size."""
    import importlib.util

    from edgedepth.models import dav2_weights as weights
    from edgedepth.network import unreachable

    if options.runtime == "torch" and importlib.util.find_spec("torch") is None:
        raise ConfigError("runtime: torch needs PyTorch: pip install 'edgedepth[torch]'")
    if options.runtime == "qnn" and importlib.util.find_spec("onnxruntime_qnn") is None:
        raise ConfigError("runtime: qnn needs onnxruntime-qnn: pip install 'edgedepth[qnn]'")
    if options.model is not None:
        model_path, manifest = ready_model_file(Path(options.model))
        shape = ((manifest.get("inputs") or [{}])[0]).get("shape")  # an export's: NCHW
        fixed = tuple(shape[-2:]) if shape else None
        if shape is None and not is_context_model(model_path):
            session = cpu_session(model_path, threads=1)
            fixed = detect_layout(session.get_inputs(), session.get_outputs(), True).fixed_size
        size = context.input_size
        if size and fixed and all(isinstance(s, int) for s in fixed) and fixed != tuple(size):
            raise ConfigError(
                f"model: {model_path} takes {fixed[0]}×{fixed[1]} images but the resize policy "
                f"delivers {size[0]}×{size[1]}: set preprocess.resize (fixed {fixed[1]}×"
                f"{fixed[0]}, or none for a graph that resizes inside)"
            )
        return
    if options.checkpoint is not None or options.random_weights:
        return
    encoder = options.encoder or "vits"
    target = weights.official_path(kind, encoder, options.dataset, context.cache_dir)  # type: ignore[arg-type]
    if target.exists():
        return
    url = weights.official_url(kind, encoder, options.dataset)  # type: ignore[arg-type]
    reason = unreachable(url, timeout=5.0)
    if reason is not None:
        raise EdgedepthError(weights.cannot_download(target, url, reason))


def relative_backend(options: DAv2Options, context: BuildContext) -> DAv2Backend:
    return DAv2Backend(options, context, "relative")


def metric_backend(options: DAv2Options, context: BuildContext) -> DAv2Backend:
    return DAv2Backend(options, context, "metric")


@edgedepth.hookimpl
def register_backends(register: edgedepth.Register) -> None:
    register(
        "dav2-relative",
        DAv2Options,
        relative_backend,
        description="DepthAnythingV2 relative (disparity; invert for LPCVC), ONNX/QNN/torch",
        check=lambda options, context: check_dav2(options, context, "relative"),
    )
    register(
        "dav2-metric",
        DAv2Options,
        metric_backend,
        description="DepthAnythingV2 metric (metres), ONNX/QNN/torch",
        check=lambda options, context: check_dav2(options, context, "metric"),
    )
