"""A test sink that fails like a full disk after a number of frames."""

import errno

from pydantic import Field

import edgedepth
from edgedepth.config import StrictModel


class FullDiskOptions(StrictModel):
    fail_at: int = Field(10, ge=0)


class FullDiskSink:
    def __init__(self, options: FullDiskOptions, context: edgedepth.BuildContext) -> None:
        self.options = options
        self.written = 0

    def write(self, frame) -> None:
        if self.written == self.options.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += 1


@edgedepth.hookimpl
def register_sinks(register):
    register("full-disk", FullDiskOptions, FullDiskSink, description="test: fails like ENOSPC")
