"""The identity of a model or checkpoint file by its content (sha256), computed once per version
of the file and remembered in the cache: what a cached export or a compiled context binary is
keyed by, found again without reading the file."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from edgedepth.api.errors import EdgedepthError

log = logging.getLogger("edgedepth")


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]


def file_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder's files in name order (a ``*-hf`` folder)."""
    digest = hashlib.sha256()
    for file in _files(path):
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def content_sha256(path: Path, cache_dir: Path) -> str:
    """:func:`file_sha256`, computed once per version of the file: remembered in the cache under
    the file's path, size and modification time (a changed or replaced file is hashed again)."""
    try:
        stamp = "|".join(
            f"{file.resolve()}:{info.st_size}:{info.st_mtime_ns}"
            for file in _files(path)
            for info in [file.stat()]
        )
    except OSError as exc:
        raise EdgedepthError(f"cannot read {path}: {exc.strerror or exc}") from None
    memo = cache_dir / "weights-sha256" / hashlib.sha256(stamp.encode()).hexdigest()[:32]
    try:
        return memo.read_text().strip()
    except OSError:
        pass
    digest = file_sha256(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        # Written whole, then renamed: another process never reads half a digest.
        handle, staging = tempfile.mkstemp(dir=memo.parent, prefix=".sha256-")
        with os.fdopen(handle, "w") as out:
            out.write(digest)
        os.replace(staging, memo)
    except OSError:  # a read-only cache: hash again next time
        log.debug("cannot remember the sha256 of %s in %s", path, memo.parent, exc_info=True)
    return digest
