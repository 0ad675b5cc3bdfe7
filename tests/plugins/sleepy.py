"""A test backend: depth = mean of the RGB channels × scale, after an optional fixed delay.

Loaded from configs as a ``.py`` plugin, the way a user's own plugin file would be."""

import time
from pathlib import Path

import numpy as np
from pydantic import Field

import edgedepth
from edgedepth.api.options import StrictModel


class SleepyOptions(StrictModel):
    delay_ms: float = Field(0.0, ge=0)
    #: Raise on this frame number (counted from 0 in arrival order).
    fail_at: int | None = None
    #: What the output claims to be, and a factor applied to it (e.g. 0.05 → 0..12.75 m).
    kind: edgedepth.DepthKind = edgedepth.DepthKind.RELATIVE_DISPARITY
    scale: float = 1.0
    #: A line for the viewer (``context.notes``): the sinks that draw pictures caption it.
    note: str | None = None
    #: Time to build, like a first export or a QNN compile.
    build_ms: float = Field(0.0, ge=0)
    #: A file made when the build starts: a test waits for it instead of guessing a time.
    building_marker: str | None = None


class SleepyBackend:
    def __init__(self, options: SleepyOptions, context: edgedepth.BuildContext) -> None:
        self.options = options
        self.depth_kind = options.kind
        self.calls = 0
        if options.note:
            context.notes.append(options.note)
        if options.building_marker:
            Path(options.building_marker).touch()
        time.sleep(options.build_ms / 1000)

    def infer(self, image: np.ndarray) -> np.ndarray:
        if self.options.fail_at is not None and self.calls == self.options.fail_at:
            raise RuntimeError("boom")
        self.calls += 1
        time.sleep(self.options.delay_ms / 1000)
        return image.astype(np.float32).mean(axis=2) * np.float32(self.options.scale)


class SleepySinkOptions(StrictModel):
    delay_ms: float = Field(0.0, ge=0)


class SleepySink:
    """A sink that takes ``delay_ms`` per frame and keeps nothing."""

    def __init__(self, options: SleepySinkOptions, context: edgedepth.BuildContext) -> None:
        self.options = options

    def write(self, frame) -> None:
        time.sleep(self.options.delay_ms / 1000)


@edgedepth.hookimpl
def register_backends(register):
    register(
        "sleepy",
        SleepyOptions,
        SleepyBackend,
        description="test: mean of RGB, with a delay",
        check=check_sleepy,
    )


def check_sleepy(options: SleepyOptions, context: edgedepth.BuildContext) -> None:
    """``edgedepth check``: says the depth kind, as a backend's check does."""
    context.depth_kind = options.kind


@edgedepth.hookimpl
def register_sinks(register):
    register("sleepy", SleepySinkOptions, SleepySink, description="test: sleeps per frame")
