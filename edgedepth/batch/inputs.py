"""The inputs of a batch: each command-line INPUT — a video file, an image folder (or one image),
or a text file listing inputs — expanded into :class:`BatchInput` items, and the name of the
folder each one's outputs go to (``DIR/<name>/``: the input's stem, told apart from another
input of the same stem by its parent folders)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edgedepth.media.imageops import IMAGE_SUFFIXES

#: A file with one of these suffixes lists inputs, one a line.
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})

SourceType = Literal["video", "images"]


@dataclass(frozen=True)
class BatchInput:
    """One input of a batch: the source that replaces the config's."""

    #: Absolute: a worker on another machine finds it at the same path (a shared folder).
    path: Path
    #: The source plugin that reads it.
    source: SourceType


@dataclass(frozen=True)
class InputProblem:
    """An INPUT that gives nothing to run (a missing file, a folder without images)."""

    path: Path
    error: str


def expand_inputs(arguments: Iterable[Path]) -> tuple[list[BatchInput], list[InputProblem]]:
    """Every input the arguments name, in order, each once (a list file is read, recursively;
    its relative paths are relative to it), and what could not be used, with why."""
    inputs: dict[Path, BatchInput] = {}
    problems: list[InputProblem] = []

    def add(path: Path, listed_in: tuple[Path, ...]) -> None:
        path = path.expanduser().absolute()
        if not path.exists():
            where = f" (listed in {listed_in[-1]})" if listed_in else ""
            problems.append(InputProblem(path, f"{path}: not found{where}"))
        elif path.is_dir():
            problem = _image_folder_problem(path)
            if problem is not None:
                problems.append(InputProblem(path, problem))
            else:
                inputs.setdefault(path, BatchInput(path, "images"))
        elif path.suffix.lower() in LIST_SUFFIXES:
            if path in listed_in:
                loop = f"{path}: lists itself (through {listed_in[-1]})"
                problems.append(InputProblem(path, loop))
                return
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(InputProblem(path, f"{path}: cannot read the list: {exc}"))
                return
            for line in lines:
                entry = line.strip()
                if entry and not entry.startswith("#"):
                    add(path.parent / entry, (*listed_in, path))
        else:
            source: SourceType = "images" if path.suffix.lower() in IMAGE_SUFFIXES else "video"
            inputs.setdefault(path, BatchInput(path, source))

    for argument in arguments:
        add(argument, ())
    return list(inputs.values()), problems


def _image_folder_problem(folder: Path) -> str | None:
    files = [path for path in folder.iterdir() if path.is_file()]
    if any(path.suffix.lower() in IMAGE_SUFFIXES for path in files):
        return None
    if files:
        return (
            f"{folder}: no images in this folder ({len(files)} other files): give its videos "
            f"one by one (e.g. {folder / '*.mp4'}) or in a list file"
        )
    return f"{folder}: no images in this folder"


def output_names(paths: Sequence[Path], previous: Mapping[Path, str] = {}) -> dict[Path, str]:
    """The folder name of each input: the name an earlier run of the batch gave it
    (``previous``), else its stem; inputs of the same stem are named by their parent folders
    as well (``cam1-clip``, ``cam2-clip``), then by their suffix (``clip.mp4``), and none of
    them keeps the bare stem, whichever comes first."""
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for path in paths:
        name = previous.get(path)
        if name is not None and name not in taken:
            names[path] = name
            taken.add(name)
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        if path not in names:
            by_stem[_safe(path.stem if path.is_file() else path.name)].append(path)
    clashes = []
    for stem, group in by_stem.items():
        if len(group) == 1 and stem not in taken:
            names[group[0]] = stem
            taken.add(stem)
        else:
            clashes.append(group)
    for group in clashes:
        for path, name in _distinct_names(group, taken).items():
            names[path] = name
            taken.add(name)
    return {path: names[path] for path in paths}


def _distinct_names(group: list[Path], taken: set[str]) -> dict[Path, str]:
    """Names for paths of one stem, made of as few parent folders as tell them apart."""
    deepest = max(len(path.parent.parts) for path in group)
    for with_suffix in (False, True):
        for depth in range(0 if with_suffix else 1, deepest + 1):
            names = {path: _label(path, depth, with_suffix) for path in group}
            if len(set(names.values())) == len(group) and not taken & set(names.values()):
                return names
    # Every such name is taken already: numbered.
    names: dict[Path, str] = {}
    used = set(taken)
    for path in sorted(group):
        number, stem = 2, _label(path, 0, False)
        while f"{stem}-{number}" in used:
            number += 1
        names[path] = f"{stem}-{number}"
        used.add(names[path])
    return names


def _label(path: Path, depth: int, with_suffix: bool) -> str:
    parents = [part for part in path.parent.parts if part not in (path.anchor, "")]
    leaf = path.name if with_suffix or not path.is_file() else path.stem
    return _safe("-".join([*parents[len(parents) - depth :], leaf] if depth else [leaf]))


def _safe(name: str) -> str:
    """A folder name on every system: no separators or characters Windows refuses, and no
    leading dot (the batch's own temporary folders are hidden ones)."""
    name = re.sub(r'[<>:"/\\|?*\x00-\x1f]', "_", name).lstrip(".").strip()
    return name or "input"
