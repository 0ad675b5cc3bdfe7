"""Graphs built per input size, cached on disk: ``exports/<name>-<digest>/`` holds ``model.onnx``
and ``manifest.json``, where the digest is of everything the graph is a function of (what the
model plugin's :meth:`GraphBuilder.graph_key` says) and the input
size. A folder appears whole or not at all (built in a staging folder, then renamed), so a
killed export never counts as done, and two processes never read half of one."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from edgedepth.runtime.cache import cache_error, cache_folder
from edgedepth.runtime.manifest import MANIFEST_NAME, Manifest

log = logging.getLogger("edgedepth")

Size = tuple[int, int]
#: How messages name the folder of exported graphs.
GRAPH_CACHE = "the graph cache"


@runtime_checkable
class GraphBuilder(Protocol):
    """A :class:`DepthModel` that can build its own graph (from a checkpoint) for an input size:
    the backend exports one per size and caches it; ``edgedepth deploy`` exports it too."""

    def graph_key(self, htp: bool) -> dict[str, Any]:
        """Everything the graph is a function of but the input size (the weights' sha256, the
        options that shape it; ``"name"`` begins the cache folder's name). ``htp``: for the QNN
        HTP. Cheap: a cached graph is found without building the model."""
        ...

    def export(self, size: Size, path: Path, htp: bool) -> Manifest:
        """Write the ONNX graph for ``size`` (height, width) to ``path``; its manifest (tensor
        names and shapes, depth kind and range)."""
        ...


def export_folder(key: dict[str, Any], size: Size, cache_dir: Path) -> Path:
    """Where the graph for ``key`` at ``size`` (height, width) is cached. ``key["name"]`` (when
    given) begins the folder's name, for people looking into the cache."""
    source = json.dumps({"graph": key, "input": list(size)}, sort_keys=True, default=str)
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    return cache_dir / "exports" / f"{key.get('name', 'graph')}-{digest}"


def is_exported(folder: Path) -> bool:
    return (folder / "model.onnx").is_file() and (folder / MANIFEST_NAME).is_file()


def cached_export(
    builder: GraphBuilder, size: Size, htp: bool, cache_dir: Path
) -> tuple[Path, Manifest]:
    """The folder of the graph ``builder`` makes for ``size`` (exported on first use) and its
    manifest. ``htp``: the graph will run on the QNN HTP (a builder may shape it for that)."""
    folder = export_folder(builder.graph_key(htp), size, cache_dir)
    if is_exported(folder):
        log.info("using cached export %s", folder)
        manifest = Manifest.read(folder)
        assert manifest is not None
        return folder, manifest
    cache_folder(folder.parent, GRAPH_CACHE)
    try:
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".export-"))
    except OSError as exc:
        raise cache_error(folder.parent, GRAPH_CACHE, exc.strerror or str(exc)) from None
    try:
        manifest = builder.export(size, staging / "model.onnx", htp)
        manifest.write(staging)
        if folder.exists() and not is_exported(folder):  # left by an older version
            shutil.rmtree(folder, ignore_errors=True)
        try:
            staging.rename(folder)
        except OSError:
            if not is_exported(folder):
                raise
            # Another process exported the same graph meanwhile: theirs is as good.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder, manifest
