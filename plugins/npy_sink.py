"""``npy``: one ``.npy`` file per frame, float32, the depth map as the pipeline produced it.
With ``layout: nchw`` it is the LPCVC submission format (1×1×H×W)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

import edgedepth
from edgedepth.config import ConfigPath, StrictModel
from edgedepth.errors import EdgedepthError
from edgedepth.frame import Frame
from edgedepth.stages import BuildContext


class NpyOptions(StrictModel):
    #: Output folder (created if missing).
    dir: ConfigPath
    layout: Literal["hw", "nchw"] = "hw"
    #: File name; ``{index}`` is the frame index.
    name: str = "{index:06d}.npy"


class NpySink:
    def __init__(self, options: NpyOptions, context: BuildContext) -> None:
        self.dir = Path(options.dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgedepthError(f"dir: cannot create {self.dir}: {exc.strerror}") from None
        self.options = options
        self.written = 0

    def write(self, frame: Frame) -> None:
        assert frame.depth is not None
        depth = np.asarray(frame.depth, dtype=np.float32)
        if self.options.layout == "nchw":
            depth = depth[np.newaxis, np.newaxis]
        path = self.dir / self.options.name.format(index=frame.index)
        # Write then rename: an interrupted run never leaves a half-written .npy behind.
        partial = path.with_name(path.name + ".partial")
        with open(partial, "wb") as file:
            np.save(file, depth)
        partial.replace(path)
        self.written += 1


@edgedepth.hookimpl
def register_sinks(register):
    register("npy", NpyOptions, NpySink, description="one float32 .npy per frame (LPCVC format)")
