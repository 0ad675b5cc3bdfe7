"""edgedepth: real-time monocular depth for Snapdragon devices.

Everything a plugin author needs is importable from here: :data:`hookimpl`, the option helpers
(:class:`StrictModel`, :data:`InputPath`, :data:`OutputPath`, :data:`OutputDir`,
:data:`ConfigPath`; :class:`WritesFiles` for a stage that writes files: the ``existing``
policy), what a factory is given (:class:`BuildContext`, :class:`SourceInfo`), the data
(:class:`Frame`, :class:`DepthKind`, :class:`Intrinsics`), :class:`StopPipeline` and the
errors. The stage contracts (what a factory returns) are the Protocols in
:mod:`edgedepth.api.stages`; the hooks are in :mod:`edgedepth.api.hookspecs`. A backend that
runs an ONNX model gets the NPU, int8, per-size graphs and deploy from
:mod:`edgedepth.runtime.onnx_backend`.

The house, one folder per layer; arrows point down (a layer imports only the layers below it;
``plugins/``, ``deploy/`` and ``bench/`` use the layers, nothing imports a plugin):

- ``api/`` — what a plugin sees: ``hookspecs``, ``stages`` (what factories return and are
  given), ``frame`` (the data and its typed metadata), ``options`` (option types), ``outputs``
  (the ``existing`` policy of every file written), ``errors``;
- ``engine/`` — a config becomes a running pipeline: ``config``, ``registry`` (the plugin
  manager, one per process), ``pipeline`` (build the stages; ``open_front`` for ``run``,
  ``check`` and ``deploy``), ``run`` (threads, queues, one failure guard), ``queues``,
  ``stats``, ``progress``;
- ``runtime/`` — where ONNX graphs run, for any model: ``options`` (the keys every ONNX backend
  takes), ``placement`` (auto → NPU or CPU, the fallback), ``sessions``, ``qnn`` (the QNN
  execution provider), ``int8``, ``cache`` (the cache folder: writes and their one error),
  ``model_file`` (a ready model or deploy folder and its typed manifest), ``onnx_backend`` (the
  generic backend a model plugin fills in);
- ``models/dav2/`` — DepthAnythingV2: ``network``, ``checkpoint``, ``weights``, ``loading``,
  ``graph``, ``export``, ``layouts`` (ready ONNX files);
- ``media/`` — ``imageops`` (every resize), ``colorize``, ``pointcloud`` (metric depth
  back-projected: PointCloud2 and PLY packings), ``recording`` (mp4 and lossless depth),
  ``camera_devices`` (what a camera is and offers), ``cameras`` (every camera API's listing,
  ``device:`` resolution), ``mediafoundation``
  (Windows cameras through WinRT), ``pixel_formats`` (camera frames to RGB),
  ``synthetic_scene``;
- ``topic/`` — depth topics (ZeroMQ, zenoh/rmw_zenoh), ``ros2`` messages in CDR,
  ``mcap_recording``, ``rosbag2`` (the QoS and metadata rosbag2 reads in an MCAP),
  ``endpoints`` (who can reach a bound topic), ``zenoh_session`` (TLS, user/password);
- ``evaluation/`` — ``metrics``, ``scoring``, ``lpcvc_io`` (LPCVC 2025 Track 3);
- ``system/`` — ``host``, ``network``, ``aihub_config``, ``doctor``: what this machine offers;
  ``console`` (output that survives any code page);
- ``plugins/`` — the built-ins, written as a third-party plugin is (an options model, the stage
  class, the hook); ``deploy/`` — export, quantize, compile (local, AI Hub) for any backend that
  builds ONNX graphs; ``batch/`` — one config over a library of inputs, on a local pool of
  worker processes or a Dask cluster; ``cli`` — the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgedepth.api.errors import ConfigError, EdgedepthError, PluginError
    from edgedepth.api.frame import DepthKind, Frame, Intrinsics
    from edgedepth.api.hookspecs import Register, hookimpl
    from edgedepth.api.options import ConfigPath, InputPath, OutputDir, OutputPath, StrictModel
    from edgedepth.api.outputs import Existing, WritesFiles
    from edgedepth.api.stages import BuildContext, SinkOutput, SourceInfo, StopPipeline

#: Where each name of the API lives: imported on first use, so that ``import edgedepth`` (the
#: first thing the command line does) is quick and a Ctrl-C while it loads is handled by it.
_API = {
    "ConfigError": "edgedepth.api.errors",
    "EdgedepthError": "edgedepth.api.errors",
    "PluginError": "edgedepth.api.errors",
    "DepthKind": "edgedepth.api.frame",
    "Frame": "edgedepth.api.frame",
    "Intrinsics": "edgedepth.api.frame",
    "Register": "edgedepth.api.hookspecs",
    "hookimpl": "edgedepth.api.hookspecs",
    "ConfigPath": "edgedepth.api.options",
    "InputPath": "edgedepth.api.options",
    "OutputDir": "edgedepth.api.options",
    "OutputPath": "edgedepth.api.options",
    "StrictModel": "edgedepth.api.options",
    "Existing": "edgedepth.api.outputs",
    "WritesFiles": "edgedepth.api.outputs",
    "BuildContext": "edgedepth.api.stages",
    "SinkOutput": "edgedepth.api.stages",
    "SourceInfo": "edgedepth.api.stages",
    "StopPipeline": "edgedepth.api.stages",
}


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'edgedepth' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "BuildContext",
    "ConfigError",
    "ConfigPath",
    "DepthKind",
    "EdgedepthError",
    "Existing",
    "Frame",
    "InputPath",
    "Intrinsics",
    "OutputDir",
    "OutputPath",
    "PluginError",
    "Register",
    "SinkOutput",
    "SourceInfo",
    "StopPipeline",
    "StrictModel",
    "WritesFiles",
    "__version__",
    "hookimpl",
]
