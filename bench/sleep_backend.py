"""Benchmark backend: sleeps a fixed time and returns a preallocated depth map, so the backend
stage costs exactly the sleep and the pipeline's own overhead is what is measured."""

import time

import numpy as np
from pydantic import Field

import edgedepth
from edgedepth.api.options import StrictModel


class SleepOptions(StrictModel):
    delay_ms: float = Field(30.0, ge=0)


class SleepBackend:
    depth_kind = edgedepth.DepthKind.RELATIVE_DISPARITY

    def __init__(self, options: SleepOptions, context: edgedepth.BuildContext) -> None:
        self.seconds = options.delay_ms / 1000
        self.depth = np.zeros(context.input_size, np.float32)

    def infer(self, image: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds)
        return self.depth


@edgedepth.hookimpl
def register_backends(register):
    register("sleep", SleepOptions, SleepBackend, description="bench: sleeps, returns zeros")
