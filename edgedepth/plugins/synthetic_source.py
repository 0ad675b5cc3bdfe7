"""``synthetic``: a procedurally rendered 3-D scene (textured floor, boxes, moving camera) with
its exact metric depth attached to every frame as ground truth. Deterministic for a seed: the
test and benchmark source, and what ``edgedepth eval --synthetic`` scores against."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Literal

from pydantic import Field

import edgedepth
from edgedepth.api.frame import Frame
from edgedepth.api.options import StrictModel
from edgedepth.api.stages import BuildContext, SourceInfo
from edgedepth.media.synthetic_scene import SyntheticScene


class SyntheticOptions(StrictModel):
    frames: int = Field(300, ge=1)
    """Frames to produce before the source ends."""
    width: int = Field(640, ge=16)
    """Frame width in pixels."""
    height: int = Field(480, ge=16)
    """Frame height in pixels."""
    fps: float = Field(30.0, gt=0)
    """Frame rate: the frames' timestamps, and their pace with ``live``."""
    seed: int = 0
    """Seed of the scene's layout (the same seed gives the same frames)."""
    motion: Literal["orbit", "dolly", "static"] = "orbit"
    """Camera path: around the room, towards it, or still."""
    live: bool = False
    """Behave like a camera: frames are produced at ``fps`` and the run is in live mode."""


class SyntheticSource:
    def __init__(self, options: SyntheticOptions, context: BuildContext) -> None:
        self.options = options
        self.scene = SyntheticScene(
            seed=options.seed,
            width=options.width,
            height=options.height,
            fps=options.fps,
            motion=options.motion,
        )
        self.info = SourceInfo(
            width=options.width,
            height=options.height,
            fps=options.fps,
            live=options.live,
            frame_count=options.frames,
            description=f"synthetic scene (seed {options.seed}, {options.motion})",
            intrinsics=self.scene.intrinsics,
        )

    def frames(self) -> Iterator[Frame]:
        period = 1.0 / self.options.fps
        start = time.perf_counter()
        for index in range(self.options.frames):
            if self.options.live:  # a camera delivers frames at its rate, not faster
                delay = start + index * period - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            image, depth = self.scene.render(index)
            yield Frame(
                index=index,
                timestamp=index * period,
                image=image,
                captured_at=time.perf_counter(),
                ground_truth=depth,
                intrinsics=self.info.intrinsics,
            )


@edgedepth.hookimpl
def register_sources(register):
    register(
        "synthetic",
        SyntheticOptions,
        SyntheticSource,
        description="rendered 3-D scene with ground-truth metric depth",
    )
