"""A test source that fails: reading frame ``fail_at`` raises, and so does ``close()``."""

import time

import numpy as np

import edgedepth


class BrokenOptions(edgedepth.StrictModel):
    fail_at: int = 2


class BrokenSource:
    def __init__(self, options: BrokenOptions, context: edgedepth.BuildContext) -> None:
        self.options = options
        self.info = edgedepth.SourceInfo(width=32, height=24, fps=10.0, live=False)

    def frames(self):
        for index in range(10):
            if index == self.options.fail_at:
                raise OSError(f"frame {index} is unreadable")
            image = np.full((24, 32, 3), index, np.uint8)
            yield edgedepth.Frame(index, index / 10, image, captured_at=time.perf_counter())

    def close(self) -> None:
        raise RuntimeError("the device hung up while closing")


@edgedepth.hookimpl
def register_sources(register: edgedepth.Register) -> None:
    register("broken", BrokenOptions, BrokenSource, description="test: fails reading and closing")
