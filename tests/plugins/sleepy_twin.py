"""Registers the same backend name as sleepy.py: loading both must be an error naming both."""

import edgedepth
from edgedepth.api.options import StrictModel


class NoOptions(StrictModel):
    pass


@edgedepth.hookimpl
def register_backends(register):
    register("sleepy", NoOptions, lambda options, context: None)
