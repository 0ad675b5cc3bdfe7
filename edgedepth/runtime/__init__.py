"""Where ONNX graphs run, for any backend: ``options`` (the YAML keys every ONNX backend takes),
``placement`` (auto → NPU or CPU, the fallback), ``sessions`` (CPU and QNN sessions), ``qnn``
(the QNN execution provider), ``int8`` (the CPU's int8 graphs), ``exports`` (graphs cached per
input size), ``model_file`` and ``manifest`` (a ready model or deploy folder and its record),
``file_identity`` and ``onnx_backend`` (the generic backend a model plugin fills with its pre/post
processing).

What a model plugin imports is here: :class:`OnnxOptions` (subclass it for the backend's
options), :class:`OnnxBackendFactory` (register it with the plugin's ``DepthModel``) and the
protocols :class:`DepthModel`, :class:`GraphBuilder`, :class:`GraphSignature`. They load on first
use (ONNX Runtime is imported only when a backend is built).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgedepth.runtime.manifest import Manifest
    from edgedepth.runtime.onnx_backend import (
        DepthModel,
        GraphBuilder,
        GraphSignature,
        OnnxBackend,
        OnnxBackendFactory,
    )
    from edgedepth.runtime.options import OnnxOptions, QnnOptions

_HOMES = {
    "OnnxOptions": "options",
    "QnnOptions": "options",
    "Manifest": "manifest",
    "OnnxBackend": "onnx_backend",
    "OnnxBackendFactory": "onnx_backend",
    "DepthModel": "onnx_backend",
    "GraphBuilder": "onnx_backend",
    "GraphSignature": "onnx_backend",
}

__all__ = [
    "DepthModel",
    "GraphBuilder",
    "GraphSignature",
    "Manifest",
    "OnnxBackend",
    "OnnxBackendFactory",
    "OnnxOptions",
    "QnnOptions",
]


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module 'edgedepth.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(f"edgedepth.runtime.{module}"), name)
