"""What the deploy commands share: the ONNX backend a pipeline config describes (any backend
registered with :func:`edgedepth.runtime.onnx_backend.onnx_backend`), its graph's input size,
sample frames from the config's source, and the float graph with its manifest.

Deploy never names a model: it asks the backend's model (a ``DepthModel``) for its graph (a
``GraphBuilder`` exports one for the input size; a ready ``model:`` is taken as it is, its
symbolic sizes fixed) and for the graph's inputs on sample frames (``model.inputs``)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgedepth.api.errors import EdgedepthError
from edgedepth.engine.config import LoadedConfig, PluginSection, default_cache_dir
from edgedepth.engine.pipeline import PipelineFront, build_context, open_front
from edgedepth.engine.registry import PipelineSpec, Registry, resolve_config
from edgedepth.runtime.exports import cached_export
from edgedepth.runtime.manifest import Manifest, TensorSpec
from edgedepth.runtime.model_file import ModelFile
from edgedepth.runtime.onnx_backend import (
    DepthModel,
    GraphBuilder,
    GraphSignature,
    OnnxBackendFactory,
    check_size,
    free_dimensions,
)
from edgedepth.runtime.options import OnnxOptions
from edgedepth.runtime.sessions import cpu_session

log = logging.getLogger("edgedepth")

Size = tuple[int, int]
#: A graph's inputs by name, for one frame.
Feeds = dict[str, np.ndarray]


@dataclass
class DeployTarget:
    """A pipeline config seen by the deploy tool: its ONNX backend's model and the graph's input
    size."""

    loaded: LoadedConfig
    registry: Registry
    #: The backend's registered type (``dav2-metric``, ``dpt``): what runs the result.
    backend_type: str
    options: OnnxOptions
    model: DepthModel
    input_size: Size
    cache_dir: Path
    #: (height, width) of the source's frames (the input size when --input-size was given).
    frame_size: Size


def parse_size(text: str) -> Size:
    """'480x640' → (480, 640) (height × width)."""
    try:
        height, width = (int(part) for part in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise EdgedepthError(
            f"--input-size {text!r}: expected HEIGHTxWIDTH, e.g. 480x640"
        ) from None
    return height, width


def deploy_target(
    loaded: LoadedConfig, registry: Registry, input_size: Size | None = None
) -> DeployTarget:
    spec = resolve_config(loaded, registry)
    registration = spec.backend.registration
    if not isinstance(registration.factory, OnnxBackendFactory):
        raise EdgedepthError(
            f"{loaded.label}: backend.type: deploy builds the ONNX graphs of backends that run "
            f"them (registered with edgedepth.runtime.OnnxBackendFactory), and "
            f"{registration.name!r} (plugin {registration.plugin}) is not one"
        )
    options: OnnxOptions = spec.backend.options  # type: ignore[assignment]
    context = build_context(loaded)
    if input_size is not None:
        frame_size = input_size
    else:
        # What the resize policy delivers for the config's source (480×640 stays 480×640 with
        # policy none: the LPCVC layout).
        front = _open_front(loaded, spec)
        front.close()
        context = front.context
        assert context.source is not None and context.input_size is not None
        input_size = context.input_size
        frame_size = (context.source.height, context.source.width)
    context.input_size = input_size
    model = registration.factory.model(options, context)
    if options.model is None and not isinstance(model, GraphBuilder):
        raise EdgedepthError(
            f"{loaded.label}: backend.model: required: {registration.name!r} runs ready ONNX "
            "files (it builds no graphs of its own)"
        )
    cache_dir = loaded.config.runtime.cache_dir or default_cache_dir()
    return DeployTarget(
        loaded, registry, registration.name, options, model, input_size, cache_dir, frame_size
    )


def with_source(loaded: LoadedConfig, source: PluginSection) -> LoadedConfig:
    """The same config with another source (calibration frames)."""
    return loaded._replace(config=loaded.config.model_copy(update={"source": source}))


def _open_front(loaded: LoadedConfig, spec: PipelineSpec) -> PipelineFront:
    try:
        return open_front(loaded, spec)
    except EdgedepthError as exc:
        raise EdgedepthError(
            f"{exc} (deploy reads the frame size and sample frames from the source; give "
            "--input-size HxW, or a video/images/synthetic source)"
        ) from None


def sample_frames(target: DeployTarget, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of the config's source, as the resize policy hands them to the
    backend (float32 H×W×3 RGB, 0–255, at the graph's input size)."""
    front = _open_front(target.loaded, resolve_config(target.loaded, target.registry))
    frames = []
    try:
        for frame in front.source.obj.frames():
            image, _ = front.resize.obj.apply(frame.image)
            if image.shape[:2] != target.input_size:
                raise EdgedepthError(
                    f"source frame {frame.index} is {frame.width}×{frame.height}, the graph takes "
                    f"{target.input_size[1]}×{target.input_size[0]}"
                )
            frames.append(image)
            if len(frames) == count:
                break
    finally:
        front.close()
    if not frames:
        raise EdgedepthError(f"{target.loaded.label}: source: gave no frames")
    return frames


def export_float_graph(target: DeployTarget, out_dir: Path, htp: bool = False) -> Manifest:
    """The config's float graph in ``out_dir``: ``model.onnx`` (static sizes, pre/post processing
    inside where the model puts them there) and ``manifest.json``; ``htp``: the graph is for the
    HTP (a builder may shape it for that). The model is bound to the graph (its
    :meth:`~edgedepth.runtime.onnx_backend.DepthModel.inputs` fit it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if target.options.model is not None:
        manifest = _static_copy(target, Path(target.options.model), out_dir / "model.onnx")
    else:
        builder: GraphBuilder = target.model  # type: ignore[assignment]
        folder, manifest = cached_export(builder, target.input_size, htp, target.cache_dir)
        shutil.copyfile(folder / "model.onnx", out_dir / "model.onnx")
    try:
        import onnx

        onnx.checker.check_model(str(out_dir / "model.onnx"))
    except ImportError:  # pragma: no cover - onnx comes with the torch and int8 extras
        pass
    manifest = manifest.model_copy(
        update={
            "backend": target.backend_type,
            "run_model": "model.onnx",
            "reference_model": "model.onnx",
            "precision": "float32",
            "source_config": str(target.loaded.path),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    manifest.write(out_dir)
    bind_model(target.model, out_dir / "model.onnx", manifest)
    return manifest


def bind_model(model: DepthModel, path: Path, manifest: Manifest) -> GraphSignature:
    """Tell ``model`` the graph at ``path`` (what the backend does before its first frame)."""
    graph = GraphSignature.of(cpu_session(path, threads=1), manifest, path)
    bind = getattr(model, "bind", None)
    if bind is not None:
        bind(graph)
    return graph


def _static_copy(target: DeployTarget, given: Path, out: Path) -> Manifest:
    """A ready model copied to ``out`` with its symbolic input sizes fixed to the input size
    (the HTP and AI Hub take static shapes); its manifest, from the graph and the model."""
    ready = ModelFile.open(given)
    source = ready.reference if ready.is_context_model else ready.path
    if source is None:
        raise EdgedepthError(
            f"backend.model: {ready.path} is compiled for QNN already, with no float model "
            "beside it: deploy starts from the float ONNX"
        )
    graph = bind_model(target.model, source, ready.manifest)
    check_size(target.model, graph, target.input_size, first=True)
    free = free_dimensions(target.model, graph, target.input_size)
    if free:
        _fix_dimensions(source, out, free)
    else:
        shutil.copyfile(source, out)
    static = bind_model(target.model, out, ready.manifest)
    manifest = ready.manifest.model_copy(deep=True)
    kind = manifest.depth_kind or target.model.depth_kind
    depth_range = getattr(target.model, "depth_range", None)
    manifest.depth_kind = kind
    manifest.inputs = [TensorSpec(name=t.name, shape=list(t.shape)) for t in static.inputs]
    manifest.outputs = [TensorSpec(name=t.name, shape=list(t.shape)) for t in static.outputs]
    if depth_range is not None and manifest.outputs:
        manifest.outputs[0].range = list(depth_range)
    if not manifest.model:
        manifest.model = {"file": source.name}
    return manifest


def _fix_dimensions(source: Path, out: Path, free: dict[str, int]) -> None:
    """Write ``source`` to ``out`` with the named symbolic sizes fixed (onnx's own tools)."""
    try:
        import onnx
        from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed
    except ImportError:
        raise EdgedepthError(
            "deploy fixes the ready model's symbolic sizes with the onnx package: "
            "pip install 'edgedepth[int8]'"
        ) from None
    model = onnx.load(str(source))
    for name, value in free.items():
        make_dim_param_fixed(model.graph, name, value)
    fix_output_shapes(model)
    onnx.save(model, str(out))
    log.info(
        "deploy: %s with its sizes fixed (%s)",
        source,
        ", ".join(f"{name}={value}" for name, value in free.items()),
    )


def prepare_out_dir(out_dir: Path, option: str = "--out") -> None:
    """Create the output folder and make sure it can be written, before any work is done."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise EdgedepthError(
            f"{option} {out_dir}: cannot write there ({exc.strerror or exc})"
        ) from None


def require_model_dir(path: Path, what: str) -> Manifest:
    manifest = Manifest.read(path)
    if not (path / "model.onnx").exists() or manifest is None:
        raise EdgedepthError(
            f"{what}: {path} is not a model folder from `edgedepth deploy export/quantize` "
            "(model.onnx + manifest.json)"
        )
    return manifest


def depth_maps(model: DepthModel, session: Any, feeds: list[Feeds]) -> list[np.ndarray]:
    """The model's depth for each frame's inputs, run on ``session`` (CPU, HTP)."""
    names = [output.name for output in session.get_outputs()]
    return [model.depth(dict(zip(names, session.run(None, feed), strict=True))) for feed in feeds]
