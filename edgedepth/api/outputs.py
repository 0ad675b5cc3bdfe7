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
import string
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, ClassVar, Literal, get_args

from edgedepth.api.errors import EdgedepthError, write_error
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


# --- a folder of one file per frame --------------------------------------------------------------

#: The fields a per-frame file name may use.
FRAME_NAME_FIELDS = ("index", "timestamp")


def frame_file_name(name: str, suffix: str) -> str:
    """``name`` if it is a template of one file per frame ending in ``suffix``: ``{index}``
    (required) and ``{timestamp}`` with format specs; ValueError saying what is wrong."""
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(name) if field}
    except ValueError as exc:
        raise ValueError(f"{name!r} is not a valid file name template: {exc}") from None
    unknown = sorted(fields - set(FRAME_NAME_FIELDS))
    if unknown:
        raise ValueError(
            f"{name!r}: unknown field {{{unknown[0]}}} (known: "
            + ", ".join(f"{{{field}}}" for field in FRAME_NAME_FIELDS)
            + ")"
        )
    if "index" not in fields:
        raise ValueError(f"{name!r} has no {{index}}: every frame would overwrite one file")
    try:
        name.format(index=0, timestamp=0.0)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name!r}: {exc}") from None
    if not name.endswith(suffix):
        raise ValueError(f"{name!r}: the name must end in {suffix}")
    return name


class FrameFolder:
    """The folder of a sink that writes one ``*SUFFIX`` file per frame: created, emptied of
    its ``*SUFFIX`` files with ``existing: clear`` (``refuse`` and ``new-name`` were applied
    before the run), cleared of the ``.partial`` files a killed run left; each file written
    under a temporary name and renamed, so an interrupted run or a full disk never leaves half
    a file. ``what`` names the sink in messages."""

    def __init__(self, folder: Path, suffix: str, existing: str, what: str) -> None:
        self.folder, self.suffix, self.what = folder, suffix, what
        #: Files written.
        self.written = 0
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgedepthError(f"dir: cannot create {folder}: {exc.strerror}") from None
        stale = sorted(folder.glob(f"*{suffix}"))
        if stale and existing == "clear":
            for path in stale:
                path.unlink()
            log.info("%s: deleted %d old %s file(s) in %s", what, len(stale), suffix, folder)
        for partial in folder.glob(f"*{suffix}.partial"):
            partial.unlink()

    def write(self, name: str, write: Callable[[BinaryIO], object]) -> Path:
        """Write the file ``name`` with ``write(file)``; a one-line error naming it."""
        path = self.folder / name
        partial = path.with_name(path.name + ".partial")
        try:
            with open(partial, "wb") as file:
                write(file)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise EdgedepthError(
                f"{write_error(path, exc)} ({self.written} frames written before)"
            ) from None
        partial.replace(path)
        self.written += 1
        return path
