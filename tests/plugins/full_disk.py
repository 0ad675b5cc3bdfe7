"""A test sink that fails like a full disk after a number of frames, optionally slowly (so that
it is the slowest stage and its queue is full when it fails)."""

import errno
import time

from pydantic import Field

import edgedepth
from edgedepth.api.options import StrictModel


class FullDiskOptions(StrictModel):
    fail_at: int = Field(10, ge=0)
    delay_ms: float = Field(0.0, ge=0)


class FullDiskSink:
    def __init__(self, options: FullDiskOptions, context: edgedepth.BuildContext) -> None:
        self.options = options
        self.written = 0

    def write(self, frame) -> None:
        time.sleep(self.options.delay_ms / 1000)
        if self.written == self.options.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += 1


@edgedepth.hookimpl
def register_sinks(register):
    register("full-disk", FullDiskOptions, FullDiskSink, description="test: fails like ENOSPC")
