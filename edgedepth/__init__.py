"""edgedepth: real-time monocular depth for Snapdragon devices.

Everything a plugin author needs is importable from here: :data:`hookimpl`, the option helpers
(:class:`StrictModel`, :data:`InputPath`, :data:`OutputPath`, :data:`OutputDir`,
:data:`ConfigPath`), what a
factory is given (:class:`BuildContext`, :class:`SourceInfo`), the data (:class:`Frame`,
:class:`DepthKind`), :class:`StopPipeline` and the errors. The stage contracts (what a factory
returns) are the Protocols in :mod:`edgedepth.stages`; the hooks are in :mod:`edgedepth.hookspecs`.

Which module owns what (arrows point one way: ``plugins/``, ``deploy/``, ``bench/`` → here; a
plugin never imports another plugin; the core never imports a plugin):

- contract: ``hookspecs`` (the hooks), ``stages`` (what factories return, ``BuildContext``),
  ``frame`` (the data), ``errors``;
- wiring: ``registry`` (load plugins, collect registrations, validate their options),
  ``config`` (YAML → validated config), ``pipeline`` (assemble the stages; ``open_front`` opens
  source + resize policy for both ``run`` and ``deploy``), ``run`` (one run: threads, queues,
  the failure guard), ``queues``, ``stats``, ``progress`` (bars with an estimate), ``cli``;
- shared libraries used by several plugins: ``imageops`` (every resize, image files),
  ``colorize``, ``recording`` (video writing: mp4 and lossless depth), ``topic/`` (messages,
  publish and subscribe, rmw_zenoh), ``ros2`` (ROS 2 messages in CDR) and ``mcap_recording``,
  ``metrics`` + ``scoring`` + ``lpcvc_io`` (evaluation), ``synthetic_scene``, ``models/``
  (DepthAnythingV2, checkpoints and which weights a config names, export; the layouts of ready
  ONNX files), ``depth_graph`` (the exported graph's contract), ``ort_session`` (ONNX Runtime
  CPU/QNN sessions), ``qnn`` (the QNN execution provider: options, device, versions),
  ``cpu_int8`` (the int8 CPU graph), ``cameras``, ``host``, ``network``, ``aihub_config`` and
  ``doctor`` (what works on this machine);
- plugins (``edgedepth.plugins``, ``edgedepth.deploy``): thin — an options model, the stage
  class, the hook; a command plugin parses arguments and calls the core.
"""

from edgedepth.config import ConfigPath, InputPath, OutputDir, OutputPath, StrictModel
from edgedepth.errors import ConfigError, EdgedepthError, PluginError
from edgedepth.frame import DepthKind, Frame
from edgedepth.hookspecs import Register, hookimpl
from edgedepth.stages import BuildContext, SinkOutput, SourceInfo, StopPipeline

__version__ = "0.1.0"

__all__ = [
    "BuildContext",
    "ConfigError",
    "ConfigPath",
    "DepthKind",
    "EdgedepthError",
    "Frame",
    "InputPath",
    "OutputDir",
    "OutputPath",
    "PluginError",
    "Register",
    "SinkOutput",
    "SourceInfo",
    "StopPipeline",
    "StrictModel",
    "__version__",
    "hookimpl",
]
