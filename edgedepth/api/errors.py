"""Errors a user can act on.

Anything raised as :class:`EdgedepthError` is printed by the CLI as one line (no traceback
unless ``--debug``). The message must name the file, key or value at fault.
"""

from __future__ import annotations

import errno
from pathlib import Path


class EdgedepthError(Exception):
    """A user-facing error: bad config, missing file, unusable checkpoint, absent device."""

    exit_code = 1


class ConfigError(EdgedepthError):
    """The config (or a value in it) is invalid; raised before the pipeline starts."""

    exit_code = 2


class PluginError(EdgedepthError):
    """A plugin could not be loaded, or two plugins registered the same name."""

    exit_code = 2


def write_error(path: Path, exc: BaseException) -> EdgedepthError:
    """A write failure as one line naming the file (and saying "disk full" when it is)."""
    code = getattr(exc, "errno", None)
    short_write = "requested and" in str(exc)  # numpy: "N requested and M written"
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1), errno.EFBIG) or short_write:
        return EdgedepthError(f"cannot write {path}: disk full")
    reason = getattr(exc, "strerror", None) or str(exc)
    return EdgedepthError(f"cannot write {path}: {reason}")
