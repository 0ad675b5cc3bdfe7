"""``DIR/batch.json``: what a batch did with each input — its state, frames, seconds, outputs and
the error line if it failed — rewritten (atomically) each time an input ends, so that a batch
killed half-way still leaves a true report; read again by a rerun for the names it gave."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import edgedepth

log = logging.getLogger("edgedepth")

REPORT_NAME = "batch.json"

#: pending: not run (yet); done: its folder is complete; skipped: complete from an earlier run
#: of the batch; failed: an error (its outputs so far are in ``DIR/.<name>.failed/``);
#: interrupted: stopped by Ctrl-C or SIGTERM (nothing kept).
State = Literal["pending", "done", "skipped", "failed", "interrupted"]


@dataclass(frozen=True)
class OutputFile:
    """A file or folder a sink wrote for an input."""

    #: Relative to the batch's output folder (``clip/depth.mp4``), whatever machine wrote it.
    path: str
    frames: int | None
    what: str = ""


@dataclass
class InputResult:
    """One input of the batch, as ``batch.json`` lists it."""

    input: str
    #: Its folder in the batch's output folder (None: the input could not be used at all).
    name: str | None
    state: State = "pending"
    frames: int | None = None
    #: On the worker: from the task's start to its outputs in place (``setup_seconds`` of them
    #: opening the source and the sinks, and loading the model when ``backend_built``).
    seconds: float | None = None
    setup_seconds: float | None = None
    #: The model was loaded for this input (False: the worker's loaded one was reused).
    backend_built: bool | None = None
    outputs: list[OutputFile] = field(default_factory=list)
    error: str | None = None
    #: ``host:pid`` (a Dask worker: its address) of the worker that ran it.
    worker: str | None = None
    #: Times it was started (more than 1: a worker died while running it).
    attempts: int = 0
    #: Of the config (and overrides) it was run with (:func:`config_fingerprint`).
    config_fingerprint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputResult:
        known = {f.name for f in dataclasses.fields(cls)}
        entry = cls(**{key: value for key, value in data.items() if key in known})
        entry.outputs = [OutputFile(**output) for output in data.get("outputs") or []]
        return entry


def config_fingerprint(config: Path, overrides: Sequence[str]) -> str:
    """What the outputs were made with: the config file's bytes and the ``--set`` overrides."""
    digest = hashlib.sha256(config.read_bytes())
    for override in overrides:
        digest.update(b"\0" + override.encode())
    return digest.hexdigest()[:16]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class BatchReport:
    """The report of one batch run, kept in ``out/batch.json``."""

    def __init__(self, out: Path, config: Path, overrides: Sequence[str], fingerprint: str) -> None:
        self.path = out / REPORT_NAME
        self.header: dict[str, Any] = {
            "edgedepth": edgedepth.__version__,
            "config": str(config),
            "overrides": list(overrides),
            "config_fingerprint": fingerprint,
            "out": str(out),
            "executor": None,  # where the inputs ran (None: nothing to run)
            "started_at": _now(),
            "finished_at": None,
        }
        self.entries: list[InputResult] = []
        self._by_name: dict[str, int] = {}

    def add(self, entry: InputResult) -> None:
        if entry.name is not None:
            self._by_name[entry.name] = len(self.entries)
        self.entries.append(entry)

    def record(self, result: InputResult) -> None:
        """An input's result replaces its pending entry; the report is written."""
        assert result.name is not None
        self.entries[self._by_name[result.name]] = result
        self.write()

    def counts(self) -> Counter[str]:
        return Counter(entry.state for entry in self.entries)

    @property
    def succeeded(self) -> bool:
        return all(entry.state in ("done", "skipped") for entry in self.entries)

    def summary(self, most: int = 10) -> list[str]:
        """``batch: 8 done, 1 skipped, 1 failed (DIR/batch.json)`` and each failed input's
        error (the first ``most``)."""
        counts = self.counts()
        states = ("done", "skipped", "failed", "interrupted", "pending")
        parts = ", ".join(f"{counts[state]} {state}" for state in states if counts[state])
        lines = [f"batch: {parts or 'no inputs'} ({self.path})"]
        failed = [entry for entry in self.entries if entry.state == "failed"]
        lines += [f"failed: {entry.input}: {entry.error}" for entry in failed[:most]]
        if len(failed) > most:
            lines.append(f"… and {len(failed) - most} more failed: see {self.path}")
        return lines

    def write(self, finished: bool = False) -> None:
        if finished:
            self.header["finished_at"] = _now()
        data = {
            **self.header,
            "counts": dict(self.counts()),
            "inputs": [entry.as_dict() for entry in self.entries],
        }
        partial = self.path.with_name(f".{REPORT_NAME}.partial")
        partial.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(partial, self.path)


def read_report(out: Path) -> dict[Path, InputResult]:
    """An earlier run's entries by input path (none when there is no report, or it cannot be
    read: a warning, never a failure)."""
    path = out / REPORT_NAME
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = [InputResult.from_dict(item) for item in data["inputs"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("warning: %s: cannot read the earlier report (%s); not using it", path, exc)
        return {}
    return {Path(entry.input): entry for entry in entries if entry.name is not None}


def listed_outputs(folder: Path, out: Path) -> list[OutputFile]:
    """The files in a finished input's folder (for one the report does not describe)."""
    files: Iterable[Path] = sorted(path for path in folder.rglob("*") if path.is_file())
    return [OutputFile(path.relative_to(out).as_posix(), None) for path in files]
