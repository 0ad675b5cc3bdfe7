"""A test sink whose ``close()`` works in Python for ``close_seconds`` (a sink finalising a
large file): Ctrl-C must say what it waits for, and a second Ctrl-C must end the wait."""

import time

from pydantic import Field

import edgedepth
from edgedepth.api.options import StrictModel


class SlowCloseOptions(StrictModel):
    close_seconds: float = Field(60.0, ge=0)


class SlowCloseSink:
    def __init__(self, options: SlowCloseOptions, context: edgedepth.BuildContext) -> None:
        self.options = options

    def write(self, frame) -> None:
        pass

    def close(self) -> None:
        end = time.monotonic() + self.options.close_seconds
        while time.monotonic() < end:  # Python work, not a native call
            sum(range(1000))


@edgedepth.hookimpl
def register_sinks(register):
    register("slow-close", SlowCloseOptions, SlowCloseSink, description="test: a slow close()")
