"""``npy``: one ``.npy`` file per frame, float32, the depth map as the pipeline produced it.
With ``layout: nchw`` it is the LPCVC submission format (1×1×H×W).

A folder that already holds ``.npy`` files is refused unless ``existing`` says what to do with
them (``clear``: delete them first; ``overwrite``: keep them, overwrite same names; ``new-name``:
write into ``DIR-2``), so a new run is never silently mixed with files of an old one. Each file
is written under a temporary name and renamed, so an interrupted run or a full disk never
leaves a half-written ``.npy``.
"""

from __future__ import annotations

import logging
import string
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import field_validator

import edgedepth
from edgedepth import BuildContext, EdgedepthError, Frame, OutputDir, SinkOutput
from edgedepth.api.errors import write_error
from edgedepth.api.outputs import WritesFiles, existing_files

log = logging.getLogger("edgedepth")

#: The fields a file name may use.
NAME_FIELDS = ("index", "timestamp")


class NpyOptions(WritesFiles):
    existing_hint: ClassVar[str] = (
        "set existing: clear (delete them first), existing: overwrite (keep them, replace "
        "files of the same name) or existing: new-name (a new folder)"
    )

    dir: OutputDir
    """Output folder (created if missing)."""
    layout: Literal["hw", "nchw"] = "hw"
    """Array shape: H×W, or 1×1×H×W (the LPCVC submission format)."""
    name: str = "{index:06d}.npy"
    """File name: ``{index}`` (the frame index, required: one file per frame) and optionally
    ``{timestamp}`` (seconds), with Python format specs, e.g. ``frame_{index:05d}.npy``."""
    existing: Literal["refuse", "clear", "overwrite", "new-name"] = "refuse"
    """``.npy`` files already in ``dir``: ``refuse`` (an error, before any work), ``clear``
    (delete them first), ``overwrite`` (keep them; files of the same name are replaced),
    ``new-name`` (write into ``DIR-2``, ``DIR-3``, …)."""

    def occupied(self, field: str, path: Path) -> list[Path]:
        return sorted(path.glob("*.npy")) if path.is_dir() else existing_files(path)

    @field_validator("name")
    @classmethod
    def _one_file_per_frame(cls, name: str) -> str:
        try:
            fields = {field for _, field, _, _ in string.Formatter().parse(name) if field}
        except ValueError as exc:
            raise ValueError(f"{name!r} is not a valid file name template: {exc}") from None
        unknown = sorted(fields - set(NAME_FIELDS))
        if unknown:
            raise ValueError(
                f"{name!r}: unknown field {{{unknown[0]}}} (known: "
                + ", ".join(f"{{{field}}}" for field in NAME_FIELDS)
                + ")"
            )
        if "index" not in fields:
            raise ValueError(f"{name!r} has no {{index}}: every frame would overwrite one file")
        try:
            name.format(index=0, timestamp=0.0)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name!r}: {exc}") from None
        if not name.endswith(".npy"):
            raise ValueError(f"{name!r}: the name must end in .npy")
        return name


class NpySink:
    def __init__(self, options: NpyOptions, context: BuildContext) -> None:
        self.dir = Path(options.dir)
        self.options = options
        self.written = 0
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgedepthError(f"dir: cannot create {self.dir}: {exc.strerror}") from None
        # ``refuse`` and ``new-name`` were applied before the run (edgedepth.api.outputs).
        stale = sorted(self.dir.glob("*.npy"))
        if stale and options.existing == "clear":
            for path in stale:
                path.unlink()
            log.info("npy: deleted %d old .npy file(s) in %s", len(stale), self.dir)
        for partial in self.dir.glob("*.npy.partial"):  # left by a killed run
            partial.unlink()

    def write(self, frame: Frame) -> None:
        assert frame.depth is not None
        depth = np.asarray(frame.depth, dtype=np.float32)
        if self.options.layout == "nchw":
            depth = depth[np.newaxis, np.newaxis]
        path = self.dir / self.options.name.format(index=frame.index, timestamp=frame.timestamp)
        # Write then rename: an interrupted run never leaves a half-written .npy behind.
        partial = path.with_name(path.name + ".partial")
        try:
            with open(partial, "wb") as file:
                np.save(file, depth)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise EdgedepthError(
                f"{write_error(path, exc)} ({self.written} frames written before)"
            ) from None
        partial.replace(path)
        self.written += 1

    def outputs(self) -> list[SinkOutput]:
        return [SinkOutput(self.dir, self.written, f"one .npy per frame, {self.options.layout}")]


@edgedepth.hookimpl
def register_sinks(register: edgedepth.Register) -> None:
    register("npy", NpyOptions, NpySink, description="one float32 .npy per frame (LPCVC format)")
