"""Errors a user can act on.

Anything raised as :class:`EdgedepthError` is printed by the CLI as one line (no traceback
unless ``--debug``). The message must name the file, key or value at fault.
"""

from __future__ import annotations


class EdgedepthError(Exception):
    """A user-facing error: bad config, missing file, unusable checkpoint, absent device."""

    exit_code = 1


class ConfigError(EdgedepthError):
    """The config (or a value in it) is invalid; raised before the pipeline starts."""

    exit_code = 2


class PluginError(EdgedepthError):
    """A plugin could not be loaded, or two plugins registered the same name."""

    exit_code = 2
