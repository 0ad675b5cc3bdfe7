"""Files a run or a command writes, and what happens when one is already there: one policy,
``existing``, for every recording, folder and report.

- ``refuse`` (the default): an error naming the file, before any work; nothing is touched;
- ``overwrite``: the new output replaces the old one;
- ``new-name``: the output goes to the first free name, ``NAME-2.EXT``, ``NAME-3.EXT``, …

A stage whose options subclass :class:`WritesFiles` gets it with no code of its own: the engine
applies it to every :data:`~edgedepth.api.options.OutputPath` / ``OutputDir`` field before the
pipeline opens (in ``edgedepth check`` too)::

    class PlyOptions(WritesFiles):
        path: OutputPath
        \"\"\"The .ply file.\"\"\"

An output made of several files (a recording in segments, a folder of frames) says which files
belong to it by overriding :meth:`WritesFiles.occupied`. A command applies the policy to a file
it was given with :func:`claim_output`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar, Literal, get_args

from edgedepth.api.options import StrictModel

log = logging.getLogger("edgedepth")

#: What to do with an output that is already there (see the module docstring).
Existing = Literal["refuse", "overwrite", "new-name"]
EXISTING_CHOICES: tuple[str, ...] = get_args(Existing)
#: ``new-name`` tries NAME-2 … NAME-<this> before giving up.
MAX_NEW_NAMES = 9999
#: How a config's ``existing`` key is changed (a command says its ``--existing`` option).
OPTION_HINT = "set existing: overwrite to replace it, or existing: new-name to write beside it"


class OutputExists(ValueError):
    """An output is already there and ``existing`` says to refuse it."""


def existing_files(path: Path) -> list[Path]:
    """What is already at ``path``: the file itself, or a folder's entries (an empty folder
    holds nothing to lose)."""
    if path.is_dir():
        return sorted(path.iterdir())
    return [path] if path.exists() or path.is_symlink() else []


def numbered(path: Path, number: int) -> Path:
    """``run.mp4`` → ``run-2.mp4``; ``frames`` → ``frames-2`` (the name before any suffix)."""
    return path.with_name(f"{path.stem}-{number}{path.suffix}")


def claim_output(
    path: Path,
    existing: str,
    what: str,
    occupied: Callable[[Path], Iterable[Path]] = existing_files,
    taken: Iterable[Path] = (),
    hint: str = OPTION_HINT,
) -> Path:
    """The path an output will be written to by the ``existing`` policy: ``path``, or a new
    name. ``what`` names it in messages (``c.yaml: sinks[0].path``, ``--plot``);
    ``occupied(p)`` lists the files an output at ``p`` would replace; ``taken``: paths other
    outputs of the same run have claimed; ``hint``: how to choose another policy. Raises
    :class:`OutputExists` for ``refuse``, ValueError when the folder cannot be written (both
    one line naming the file)."""
    taken = set(taken)
    if path in taken and existing != "new-name":
        raise OutputExists(f"{what}: {path} is also written by another output of this run")
    already = list(occupied(path))
    if already and existing == "refuse":
        if already == [path]:
            held = "exists (the output of an earlier run)"
        else:
            held = f"holds {len(already)} file(s) of an earlier run (e.g. {already[0].name})"
        raise OutputExists(f"{what}: {path} {held}: {hint}")
    if existing == "new-name" and (already or path in taken):
        path = _free_name(path, occupied, taken, what)
    try:
        probe_writable(path if path.is_dir() else path.parent)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    return path


def _free_name(
    path: Path, occupied: Callable[[Path], Iterable[Path]], taken: set[Path], what: str
) -> Path:
    for number in range(2, MAX_NEW_NAMES + 1):
        candidate = numbered(path, number)
        if candidate not in taken and not list(occupied(candidate)):
            log.info("%s: %s exists: writing %s (existing: new-name)", what, path, candidate)
            return candidate
    raise OutputExists(f"{what}: {path} and {MAX_NEW_NAMES - 1} numbered names are all taken")


def probe_writable(folder: Path) -> None:
    """Whether files can be created in ``folder`` (or, when it does not exist yet, in the
    nearest folder above it that does), found by creating one and deleting it: permissions,
    read-only and pseudo file systems (``/proc``) alike. ValueError saying why not."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".edgedepth-probe-"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot create files in {existing} ({exc.strerror or exc})") from None


class WritesFiles(StrictModel):
    """Options of a stage that writes files: each ``OutputPath``/``OutputDir`` field is claimed
    by the ``existing`` policy before the pipeline opens (see :mod:`edgedepth.api.outputs`)."""

    #: Says how to choose another policy, after "already there" (a subclass with other
    #: choices says them).
    existing_hint: ClassVar[str] = OPTION_HINT

    existing: Existing = "refuse"
    """An output already there (an earlier run's): ``refuse`` (an error naming it, before any
    work), ``overwrite`` (replace it) or ``new-name`` (write NAME-2.EXT, NAME-3.EXT, …)."""

    def occupied(self, field: str, path: Path) -> list[Path]:
        """The files already there that the output of ``field`` written at ``path`` would
        replace (default: the file, or a folder's entries). Override for an output of several
        files (segments) or a folder shared with other files."""
        return existing_files(path)
