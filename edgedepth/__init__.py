"""edgedepth: real-time monocular depth for Snapdragon devices.

The public API for plugin authors: :data:`hookimpl`, the stage contracts in
:mod:`edgedepth.stages`, :class:`Frame` / :class:`DepthKind`, and the option helpers
(:class:`StrictModel`, :data:`InputPath`, :data:`OutputPath`) in :mod:`edgedepth.config`.
"""

from edgedepth.errors import ConfigError, EdgedepthError, PluginError
from edgedepth.frame import DepthKind, Frame
from edgedepth.hookspecs import hookimpl
from edgedepth.stages import BuildContext, SourceInfo, StopPipeline

__version__ = "0.1.0"

__all__ = [
    "BuildContext",
    "ConfigError",
    "DepthKind",
    "EdgedepthError",
    "Frame",
    "PluginError",
    "SourceInfo",
    "StopPipeline",
    "__version__",
    "hookimpl",
]
