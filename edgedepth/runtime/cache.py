"""The cache folder (``runtime.cache_dir``, ``$EDGEDEPTH_CACHE``, ~/.cache/edgedepth): what
is made once and kept (graphs per input size, int8 copies, QNN context binaries, official
checkpoints). Every write into it goes through :func:`cache_folder`, and ``edgedepth check``
probes the same folders with :func:`check_cache_folder`: one message, with the way out, when
the cache cannot be written."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgedepth.api.errors import EdgedepthError


def cache_error(folder: Path, what: str, reason: str) -> EdgedepthError:
    """``what`` (``the graph cache``) cannot be written in ``folder``, and what to do."""
    return EdgedepthError(
        f"{what} {folder} cannot be written ({reason}): make it writable, or set "
        "runtime.cache_dir (or $EDGEDEPTH_CACHE) to a folder that is"
    )


def cache_folder(folder: Path, what: str) -> Path:
    """``folder`` in the cache, created if missing; a one-line :func:`cache_error` if it
    cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cache_error(folder, what, exc.strerror or str(exc)) from None
    return folder


def check_cache_folder(folder: Path, what: str) -> None:
    """What ``edgedepth check`` does for a cache folder the run would write into: a file is
    created and deleted in it (or in the nearest folder above it that exists; nothing is
    left behind), so a read-only cache fails here with the run's own message."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise cache_error(folder, what, f"{existing} is a file")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".edgedepth-probe-"):
            pass
    except OSError as exc:
        raise cache_error(folder, what, exc.strerror or str(exc)) from None
