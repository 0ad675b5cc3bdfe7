"""``npy``: one ``.npy`` file per frame, float32, the depth map as the pipeline produced it.
With ``layout: nchw`` it is the LPCVC submission format (1×1×H×W).

A folder that already holds ``.npy`` files is refused unless ``existing`` says what to do with
them (``clear``: delete them first; ``overwrite``: keep them, overwrite same names; ``new-name``:
write into ``DIR-2``), so a new run is never silently mixed with files of an old one. Each file
is written under a temporary name and renamed, so an interrupted run or a full disk never
leaves a half-written ``.npy``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import field_validator

import edgedepth
from edgedepth import BuildContext, Frame, OutputDir, SinkOutput
from edgedepth.api.outputs import FrameFolder, WritesFiles, existing_files, frame_file_name


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
        return frame_file_name(name, ".npy")


class NpySink:
    def __init__(self, options: NpyOptions, context: BuildContext) -> None:
        self.dir = Path(options.dir)
        self.options = options
        self.folder = FrameFolder(self.dir, ".npy", options.existing, "npy")

    @property
    def written(self) -> int:
        return self.folder.written

    def write(self, frame: Frame) -> None:
        assert frame.depth is not None
        depth = np.asarray(frame.depth, dtype=np.float32)
        if self.options.layout == "nchw":
            depth = depth[np.newaxis, np.newaxis]
        name = self.options.name.format(index=frame.index, timestamp=frame.timestamp)
        self.folder.write(name, lambda file: np.save(file, depth))

    def outputs(self) -> list[SinkOutput]:
        return [SinkOutput(self.dir, self.written, f"one .npy per frame, {self.options.layout}")]


@edgedepth.hookimpl
def register_sinks(register: edgedepth.Register) -> None:
    register("npy", NpyOptions, NpySink, description="one float32 .npy per frame (LPCVC format)")
