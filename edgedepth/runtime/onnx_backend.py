"""The generic ONNX depth backend: everything that runs an ONNX depth model well, for any model.

A model plugin writes only what is specific to its model, a :class:`DepthModel`: how an image
becomes the graph's inputs, how the graph's outputs become a depth map, and what the depth
means. :class:`OnnxBackend` does the rest, from the keys of
:class:`~edgedepth.runtime.options.OnnxOptions`:

- where the graph runs (``runtime: auto`` → the NPU when there is one, else the CPU, the choice
  and a fallback logged; ``onnx-cpu``; ``qnn`` on the HTP, its context binary compiled once and
  cached), ``precision: int8`` on the CPU (a quantised copy made once), ``threads``;
- a ready model (``model:`` an ONNX or EPContext file, or a folder from ``edgedepth deploy``:
  the context model on the HTP, the float model beside it on the CPU);
- input sizes: a model with symbolic sizes gets a static graph per input size on the HTP
  (``max_shapes`` kept open); a fixed-size model refuses another size in one line;
- a model that can build its graph (a :class:`GraphBuilder`, e.g. from a checkpoint) gets a graph
  per input size, exported once and cached (:mod:`edgedepth.runtime.exports`), without building
  the model again once cached;
- ``cancel()`` (Ctrl-C cuts an inference short), ``close()``, ``edgedepth check`` (the model
  opened, its inputs matched, the caches probed, nothing run) and ``edgedepth deploy``
  (export, quantize, compile locally or on AI Hub: :mod:`edgedepth.deploy`).

Register a backend with :class:`OnnxBackendFactory`::

    register("dpt", DptOptions, OnnxBackendFactory(DptModel), description="DPT (MiDaS-style)")

where ``DptOptions`` subclasses :class:`~edgedepth.runtime.options.OnnxOptions` and
``DptModel(options, context)`` is the :class:`DepthModel`.
"""

from __future__ import annotations

import importlib.util
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from edgedepth.api.errors import ConfigError, EdgedepthError
from edgedepth.api.frame import DepthKind
from edgedepth.api.stages import BuildContext
from edgedepth.runtime.cache import check_cache_folder
from edgedepth.runtime.exports import (
    GRAPH_CACHE,
    GraphBuilder,
    cached_export,
    export_folder,
    is_exported,
)
from edgedepth.runtime.int8 import INT8_CACHE, Calibration, int8_path
from edgedepth.runtime.manifest import Manifest
from edgedepth.runtime.model_file import ModelFile
from edgedepth.runtime.options import OnnxOptions
from edgedepth.runtime.placement import Placement
from edgedepth.runtime.sessions import cpu_session

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger("edgedepth")

Size = tuple[int, int]


# --- what a model plugin provides ----------------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a graph as ONNX Runtime reads it: sizes are ints, or names (or
    None) where the graph leaves them symbolic."""

    name: str
    shape: tuple[int | str | None, ...]


@dataclass(frozen=True)
class GraphSignature:
    """What a model is told about the graph it will run (:meth:`DepthModel.bind`)."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    #: The manifest beside the model (empty when there is none).
    manifest: Manifest
    #: The file, for messages.
    path: Path

    @classmethod
    def of(cls, session: ort.InferenceSession, manifest: Manifest, path: Path) -> GraphSignature:
        def infos(args: list[Any]) -> tuple[TensorInfo, ...]:
            return tuple(TensorInfo(arg.name, tuple(arg.shape)) for arg in args)

        return cls(infos(session.get_inputs()), infos(session.get_outputs()), manifest, path)

    def input(self, name: str) -> TensorInfo | None:
        return next((tensor for tensor in self.inputs if tensor.name == name), None)


@runtime_checkable
class DepthModel(Protocol):
    """The model-specific part of an ONNX backend (what :class:`OnnxBackend` asks the plugin).

    Optional, read when present:

    - ``depth_range: tuple[float, float] | None``: (min, max) of the depth when known (a metric
      model's 0..max_depth); recordings are sized by it.
    - ``multiple_of: int``: the image's sides must be multiples of it (a ViT's patch).
    - ``bind(graph: GraphSignature) -> None``: called once the graph to run is known (its tensor
      names, shapes and manifest), before the first :meth:`inputs`: a model that accepts
      several layouts picks one here.
    - ``check(context: BuildContext) -> None``: what ``edgedepth check`` should verify beyond
      the generic checks (e.g. that a checkpoint can be read).
    """

    #: What the numbers mean (a manifest's ``depth_kind`` overrides it for its graph).
    depth_kind: DepthKind

    def inputs(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """H×W×3 RGB, float32 on the 0–255 scale (resized, not rounded) → the graph's inputs by
        name."""
        ...

    def depth(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's outputs by name → an H×W float32 depth map."""
        ...


# --- the backend ---------------------------------------------------------------------------------


class SessionsBySize:
    """Open sessions by input size (height, width), the least recently used closed beyond
    ``keep``; every size ever opened is remembered, to tell a new one."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._open: OrderedDict[Size, ort.InferenceSession] = OrderedDict()
        self.seen: set[Size] = set()

    def get(self, size: Size) -> ort.InferenceSession | None:
        session = self._open.get(size)
        if session is not None:
            self._open.move_to_end(size)
        return session

    def is_new(self, size: Size) -> bool:
        """A size not seen before, after others were (the first one is not news)."""
        return bool(self.seen) and size not in self.seen

    def add(self, size: Size, session: ort.InferenceSession) -> None:
        self._open[size] = session
        self.seen.add(size)
        if len(self._open) > self.keep:
            closed, _ = self._open.popitem(last=False)
            log.debug("backend: closed the session for %d×%d (max_shapes)", *closed)

    def clear(self) -> None:
        self._open.clear()


class OnnxBackend:
    """A depth backend (:class:`edgedepth.api.stages.Backend`) running ``model``'s ONNX graph
    where ``options`` say. Sessions are opened for the first input size when it is built (an
    export or a QNN compile happens now, not mid-run)."""

    def __init__(self, model: DepthModel, options: OnnxOptions, context: BuildContext) -> None:
        import onnxruntime as ort

        self.model = model
        self.options = options
        self.cache_dir = context.cache_dir
        self.placement = Placement(options, context.cache_dir)
        self.sessions = SessionsBySize(options.max_shapes)
        self.depth_kind: DepthKind = model.depth_kind
        self.depth_range: tuple[float, float] | None = getattr(model, "depth_range", None)
        #: A ready model (``options.model``); None when the graphs are built per size.
        self.ready: ModelFile | None = None
        self.signature: GraphSignature | None = None
        #: The one session every size uses (the CPU with symbolic sizes, a fixed-size model).
        self._single: ort.InferenceSession | None = None
        self._checked_sizes: set[Size] = set()
        # Setting ``terminate`` on these makes a running session.run return (see cancel()).
        self._run_options = ort.RunOptions()
        if options.model is not None:
            self.ready = ModelFile.open(Path(options.model))
            self.placement.resolve(self.ready)
            self._take_manifest(self.ready.manifest)
        elif isinstance(model, GraphBuilder):
            self.placement.resolve()
        else:
            raise ConfigError(
                "model: required: the ONNX file to run (or a folder from `edgedepth deploy`)"
            )
        if context.input_size is not None:
            self._session(tuple(context.input_size), first=True)  # type: ignore[arg-type]

    @property
    def runtime(self) -> str:
        """Where the graphs run: ``onnx-cpu`` or ``qnn`` (``auto`` resolved)."""
        return self.placement.name

    # --- sessions --------------------------------------------------------------------------------

    def _session(self, size: Size, first: bool = False) -> ort.InferenceSession:
        """The session for this input size: reused, or opened (exported, compiled) on first use."""
        if self._single is not None:
            self._check_size(size, first)
            return self._single
        session = self.sessions.get(size)
        if session is not None:
            return session
        if self.ready is not None:
            return self._ready_session(size, first)
        return self._exported_session(size)

    def _ready_session(self, size: Size, first: bool) -> ort.InferenceSession:
        ready = self.ready
        assert ready is not None
        fallback = ready.reference if ready.is_context_model else ready.path
        if self.signature is None and (ready.is_context_model or not self.placement.on_htp):
            # The HTP loads a context model as it is; the CPU takes every size of a model with
            # symbolic sizes: one session either way.
            calibration = self.calibration(size, fallback, ready.manifest)
            if ready.is_context_model and self.placement.on_htp:
                session = self.placement.open(
                    ready.path, None, fallback, is_context=True, calibration=calibration
                )
            else:
                session = self.placement.cpu_session(ready.for_cpu(), calibration=calibration)
            path = ready.path if self.placement.on_htp else ready.for_cpu()
            self._bind(session, ready.manifest, path)
            self._check_size(size, first)
            self._single = session
            return session
        if self.signature is None:
            # The HTP takes static shapes only: the graph's tensors are read on the CPU first.
            self._bind(cpu_session(ready.path, threads=1), ready.manifest, ready.path)
        self._check_size(size, first)
        free = free_dimensions(self.model, self.signature, size)
        if free and self.sessions.is_new(size):
            log.info(
                "backend: new input size %d×%d: compiling a graph of that size for the HTP", *size
            )
        session = self.placement.open(
            ready.path,
            None,
            fallback,
            size=size if free else None,
            free_dimensions=free,
            calibration=self.calibration(size, fallback, ready.manifest),
        )
        if not self.placement.on_htp or not free:  # auto fell back to the CPU, or a fixed size
            self._single = session
        else:
            self.sessions.add(size, session)
        return session

    def _exported_session(self, size: Size) -> ort.InferenceSession:
        builder: GraphBuilder = self.model  # type: ignore[assignment]
        htp = self.placement.on_htp
        check_size(self.model, None, size, first=not self.sessions.seen)
        exported = is_exported(export_folder(builder.graph_key(htp), size, self.cache_dir))
        if self.sessions.is_new(size):
            log.info(
                "backend: new input size %d×%d: %s%s",
                *size,
                "using its cached export" if exported else "exporting a graph for it",
                "; compiling it for the HTP (each new input size is a QNN compile; a fixed "
                "resize policy avoids them)"
                if htp
                else "",
            )
        folder, manifest = cached_export(builder, size, htp, self.cache_dir)
        graph = folder / "model.onnx"
        calibration = self.calibration(size, graph, manifest)
        session = self.placement.open(graph, folder, graph, calibration=calibration)
        if self.signature is None:
            self._bind(session, manifest, folder / "model.onnx")
        self._take_manifest(manifest)
        self.sessions.add(size, session)
        return session

    def _bind(self, session: ort.InferenceSession, manifest: Manifest, path: Path) -> None:
        self.signature = GraphSignature.of(session, manifest, path)
        self.output_names = [tensor.name for tensor in self.signature.outputs]
        bind = getattr(self.model, "bind", None)
        if bind is not None:
            bind(self.signature)

    def calibration(
        self, size: Size, float_graph: Path | None, manifest: Manifest
    ) -> Calibration | None:
        """What an int8 graph of ``float_graph`` (None: there is none) is calibrated and checked
        on: views of the synthetic scene at the input size, through the model's own ``inputs``
        and ``depth`` (the model bound to the float graph first, if it is not yet)."""
        if float_graph is None:
            return None

        def feeds(count: int) -> list[dict[str, np.ndarray]]:
            from edgedepth.media.synthetic_scene import sample_images

            if self.signature is None:
                self._bind(cpu_session(float_graph, threads=1), manifest, float_graph)
            return [self.model.inputs(image) for image in sample_images(*size, count)]

        return Calibration(feeds, self.model.depth)

    def _take_manifest(self, manifest: Manifest) -> None:
        """What a graph's manifest says of its depth overrides the model's guess."""
        if manifest.depth_kind is not None:
            self.depth_kind = manifest.depth_kind
        if self.depth_kind is DepthKind.METRIC_METERS and manifest.depth_range is not None:
            self.depth_range = manifest.depth_range

    # --- sizes -----------------------------------------------------------------------------------

    def _check_size(self, size: Size, first: bool) -> None:
        """A one-line error when the graph cannot take images of this size (once per size)."""
        if size not in self._checked_sizes:
            check_size(self.model, self.signature, size, first)
            self._checked_sizes.add(size)

    # --- running ---------------------------------------------------------------------------------

    def infer(self, image: np.ndarray) -> np.ndarray:
        """float32 H×W×3 RGB on the 0–255 scale → depth, at this image's size."""
        session = self._session((int(image.shape[0]), int(image.shape[1])))
        outputs = session.run(None, self.model.inputs(image), self._run_options)
        return self.model.depth(dict(zip(self.output_names, outputs, strict=True)))

    def cancel(self) -> None:
        """Make a running ONNX Runtime call return (from another thread, when the run stops).
        ORT checks the flag between nodes; a QNN graph runs as one node and finishes first."""
        self._run_options.terminate = True

    def close(self) -> None:
        self.sessions.clear()
        self._single = None


def check_size(model: DepthModel, graph: GraphSignature | None, size: Size, first: bool) -> None:
    """A one-line error when ``graph`` (None: a graph to be built for this size) cannot take
    images of ``size``: sides that are not multiples of the model's ``multiple_of``, inputs that
    are not what the model feeds, fixed sizes that differ. ``first``: the size the resize policy
    delivers for the first frame (a config error); else a later frame's."""
    which = "the resize policy delivers" if first else "this frame's backend input is"
    error = ConfigError if first else EdgedepthError
    where = graph.path if graph is not None else "the model"
    step = int(getattr(model, "multiple_of", 1) or 1)
    if size[0] % step or size[1] % step:
        raise error(
            f"{where} takes sides that are multiples of {step} but {which} {size[0]}×{size[1]}: "
            f"set preprocess.resize (keep-aspect, or fixed with multiples of {step})"
        )
    problem = size_problem(model, graph, size) if graph is not None else None
    if problem is None:
        return
    if problem.fix is None:
        raise error(f"{where} {problem.format(which=which)}")
    hint = (
        ", or build a graph per input size from the checkpoint (backend.checkpoint instead of "
        "backend.model)"
        if isinstance(model, GraphBuilder)
        else ""
    )
    raise error(
        f"{where} {problem.format(which=which)}: set preprocess.resize ({problem.fix}, or none "
        f"with frames of that size for a graph that resizes inside){hint}"
    )


def free_dimensions(model: DepthModel, graph: GraphSignature, size: Size) -> dict[str, int]:
    """Symbolic input sizes of ``graph`` → their values for images of ``size`` (ONNX Runtime's
    free dimension overrides; the deploy tool writes them into the graph): a static graph for
    the HTP."""
    feeds = model.inputs(np.zeros((*size, 3), np.float32))
    free: dict[str, int] = {}
    for name, tensor in feeds.items():
        declared = graph.input(name)
        if declared is None:
            continue  # check_size says so
        for side, actual in zip(declared.shape, tensor.shape, strict=False):
            if isinstance(side, str):
                free[side] = int(actual)
    return free


@dataclass(frozen=True)
class SizeProblem:
    """Why a graph cannot take images of a size, and the resize that fits it."""

    text: str
    #: The resize policy that fits (None: no resize makes it fit).
    fix: str | None

    def format(self, which: str) -> str:
        return self.text.format(which=which)


def size_problem(model: DepthModel, graph: GraphSignature, size: Size) -> SizeProblem | None:
    """Whether ``graph`` can take what ``model`` feeds it for an image of ``size``: every input
    fed, by name, with the sizes the graph fixes."""
    feeds = model.inputs(np.zeros((*size, 3), np.float32))
    fed = ", ".join(feeds) or "nothing"
    takes = ", ".join(tensor.name for tensor in graph.inputs)
    missing = [tensor.name for tensor in graph.inputs if tensor.name not in feeds]
    unknown = [name for name in feeds if graph.input(name) is None]
    if missing or unknown:
        return SizeProblem(
            f"takes the inputs {takes}, but this backend feeds {fed}: a model of another kind "
            "than the backend type expects (check backend.type and backend.model)",
            None,
        )
    for name, tensor in feeds.items():
        declared = graph.input(name)
        assert declared is not None
        if len(declared.shape) != tensor.ndim:
            return SizeProblem(
                f"takes {name} with {len(declared.shape)} dimensions, but this backend feeds "
                f"{tensor.ndim}: a model of another kind than the backend type expects (check "
                "backend.type and backend.model)",
                None,
            )
        fixed = [
            (axis, side)
            for axis, side in enumerate(declared.shape)
            if isinstance(side, int) and side != tensor.shape[axis]
        ]
        if fixed:
            wanted = _image_size(declared.shape, tensor.shape, size)
            if wanted is not None:
                height, width = wanted
                return SizeProblem(
                    f"takes {height}×{width} images but {{which}} {size[0]}×{size[1]}",
                    f"fixed {width}×{height}",
                )
            shape = "×".join(str(side) for side in declared.shape)
            return SizeProblem(
                f"takes {name} {shape} but {{which}} {size[0]}×{size[1]} images "
                f"({'×'.join(map(str, tensor.shape))})",
                "a size that fits",
            )
    return None


def _image_size(
    declared: tuple[int | str | None, ...], fed: tuple[int, ...], size: Size
) -> Size | None:
    """The (height, width) the graph fixes, found at the axes where the fed tensor holds the
    image's height and width."""
    for h_axis in reversed(range(len(fed))):
        for w_axis in range(h_axis + 1, len(fed)):
            if (fed[h_axis], fed[w_axis]) == size:
                height, width = declared[h_axis], declared[w_axis]
                if isinstance(height, int) and isinstance(width, int):
                    return height, width
    return None


# --- registering and checking --------------------------------------------------------------------


@dataclass(frozen=True)
class OnnxBackendFactory:
    """What an ONNX backend registers as its factory: builds an :class:`OnnxBackend` around the
    model ``model(options, context)`` returns (a :class:`DepthModel`; its class will do).
    ``edgedepth check`` runs :meth:`check`, and ``edgedepth deploy`` finds the model through
    :attr:`model` (a backend registered this way can be exported, quantised and compiled)."""

    model: Callable[[Any, BuildContext], DepthModel]

    def __call__(self, options: OnnxOptions, context: BuildContext) -> Any:
        return OnnxBackend(self.model(options, context), options, context)

    def check(self, options: OnnxOptions, context: BuildContext) -> None:
        """What the run opens first, opened and closed: the model file and its inputs against the
        input size, the caches it would write, the model's own check; nothing is run."""
        check_onnx_backend(self.model(options, context), options, context)


def check_onnx_backend(model: DepthModel, options: OnnxOptions, context: BuildContext) -> None:
    """``edgedepth check`` for an ONNX backend (see :meth:`OnnxBackendFactory.check`)."""
    if options.runtime == "qnn" and importlib.util.find_spec("onnxruntime_qnn") is None:
        raise ConfigError("runtime: qnn needs onnxruntime-qnn: pip install 'edgedepth[qnn]'")
    own_check = getattr(model, "check", None)
    if own_check is not None:
        own_check(context)
    context.depth_kind = model.depth_kind  # what the sinks will be given (a manifest may say)
    size = tuple(context.input_size) if context.input_size else None
    if options.model is not None:
        ready = ModelFile.open(Path(options.model))
        if ready.manifest.depth_kind is not None:
            context.depth_kind = ready.manifest.depth_kind
        float_model = ready.reference if ready.is_context_model else ready.path
        if float_model is None:
            return  # a context model alone: only the HTP can open it
        session = cpu_session(float_model, threads=1)
        graph = GraphSignature.of(session, ready.manifest, ready.path)
        if options.precision == "int8" and options.runtime != "qnn":
            folder = Placement(options, context.cache_dir).derived_dir(float_model, "int8")
            if not int8_path(float_model, folder).exists():
                check_cache_folder(folder, INT8_CACHE)
        bind = getattr(model, "bind", None)
        if bind is not None:
            bind(graph)
        if size is not None:
            check_size(model, graph, size, first=True)  # type: ignore[arg-type]
        return
    if own_check is None and isinstance(model, GraphBuilder) and size is not None:
        folder = export_folder(model.graph_key(options.runtime == "qnn"), size, context.cache_dir)  # type: ignore[arg-type]
        if not is_exported(folder):
            check_cache_folder(folder.parent, GRAPH_CACHE)
