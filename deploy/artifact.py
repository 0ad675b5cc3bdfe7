"""What the deploy commands share: the model a pipeline config describes, its graph input size,
sample frames from the config's source, the exported float graph and the artifact manifest."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgedepth.config import LoadedConfig, default_cache_dir
from edgedepth.depth_graph import MANIFEST_NAME, image_tensor, read_manifest
from edgedepth.errors import EdgedepthError
from edgedepth.pipeline import PipelineFront, open_front
from edgedepth.registry import PipelineSpec, Registry, resolve_config

log = logging.getLogger("edgedepth")

DAV2_BACKENDS = {"dav2-relative": "relative", "dav2-metric": "metric"}


@dataclass
class DeployTarget:
    """A pipeline config seen by the deploy tool: the DepthAnythingV2 backend and its input."""

    loaded: LoadedConfig
    registry: Registry
    kind: str
    backend_options: Any  # DAv2Options
    input_size: tuple[int, int]
    cache_dir: Path
    #: (height, width) of the source's frames (the input size when --input-size was given).
    frame_size: tuple[int, int]


def parse_size(text: str) -> tuple[int, int]:
    """'480x640' → (480, 640) (height × width)."""
    try:
        height, width = (int(part) for part in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise EdgedepthError(
            f"--input-size {text!r}: expected HEIGHTxWIDTH, e.g. 480x640"
        ) from None
    return height, width


def deploy_target(
    loaded: LoadedConfig, registry: Registry, input_size: tuple[int, int] | None = None
) -> DeployTarget:
    spec = resolve_config(loaded, registry)
    backend = spec.backend
    kind = DAV2_BACKENDS.get(backend.registration.name)
    if kind is None:
        raise EdgedepthError(
            f"{loaded.label}: backend.type: deploy builds DepthAnythingV2 graphs "
            f"(dav2-relative, dav2-metric), not {backend.registration.name!r}"
        )
    backend_options: Any = backend.options
    if backend_options.model is not None:
        raise EdgedepthError(
            f"{loaded.label}: backend.model: already a built model; deploy starts from a "
            "checkpoint (backend.checkpoint) or the official weights"
        )
    cache_dir = loaded.config.runtime.cache_dir or default_cache_dir()
    if input_size is not None:
        return DeployTarget(
            loaded, registry, kind, backend_options, input_size, cache_dir, input_size
        )
    # What the resize policy delivers for the config's source (480×640 stays 480×640 with policy
    # none: the LPCVC layout).
    front = _open_front(loaded, spec)
    front.close()
    assert front.context.source is not None and front.context.input_size is not None
    frame_size = (front.context.source.height, front.context.source.width)
    return DeployTarget(
        loaded, registry, kind, backend_options, front.context.input_size, cache_dir, frame_size
    )


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


def export_float_graph(target: DeployTarget, out_dir: Path, htp: bool = False) -> dict[str, Any]:
    """Export the config's graph (pre/post processing inside) into ``out_dir``: model.onnx and
    manifest.json; ``htp``: the graph is for the HTP (``graph.attention: auto`` → per-head).
    Returns the manifest."""
    from edgedepth.models.dav2_export import cached_export
    from edgedepth.models.dav2_loading import load_dav2

    model, key, _ = load_dav2(target.backend_options, target.kind, target.cache_dir)
    options = target.backend_options.graph.for_target(htp)
    cached = cached_export(model, key, options, target.input_size, target.cache_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached / "model.onnx", out_dir / "model.onnx")
    try:
        import onnx

        onnx.checker.check_model(str(out_dir / "model.onnx"))
    except ImportError:  # pragma: no cover - onnx comes with the torch extra
        pass
    manifest = read_manifest(cached)
    manifest.update(
        {
            "run_model": "model.onnx",
            "reference_model": "model.onnx",
            "precision": "float32",
            "source_config": str(target.loaded.path),
            "checkpoint": str(target.backend_options.checkpoint or "official or random"),
            "checkpoint_sha256": key.weights,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    write_manifest(out_dir, manifest)
    return manifest


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


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    path = out_dir / MANIFEST_NAME
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(manifest, indent=2, default=str))
    partial.replace(path)


def model_inputs(frames: list[np.ndarray], manifest: dict[str, Any]) -> list[np.ndarray]:
    """The graph's 1×3×H×W float32 inputs for these frames (normalised on the host if the graph
    does not normalise)."""
    normalize = manifest.get("graph", {}).get("normalize", True)
    return [image_tensor(frame, normalize) for frame in frames]


def require_model_dir(path: Path, what: str) -> dict[str, Any]:
    manifest = read_manifest(path)
    if not (path / "model.onnx").exists() or not manifest:
        raise EdgedepthError(
            f"{what}: {path} is not a model folder from `edgedepth deploy export/quantize` "
            "(model.onnx + manifest.json)"
        )
    return manifest
