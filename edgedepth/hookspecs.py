"""The extension points of edgedepth: every source, resize policy, backend, postprocessor and
sink, built-in or not, is registered through these hooks.

A plugin implements one or more of them with :data:`edgedepth.hookimpl`::

    @edgedepth.hookimpl
    def register_backends(register):
        register("sleepy", SleepyOptions, SleepyBackend, description="sleeps, returns zeros")

``register(name, options_model, factory, description="")``: ``options_model`` is a pydantic
model validated from the YAML section (all keys but ``type``/``policy``); ``factory`` is called
as ``factory(options, context)`` with a :class:`edgedepth.stages.BuildContext` and returns the
stage object described in :mod:`edgedepth.stages`.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("edgedepth")
hookimpl = pluggy.HookimplMarker("edgedepth")


@hookspec
def register_sources(register: Any) -> None:
    """Register frame sources (video files, image folders, cameras, …)."""


@hookspec
def register_resize_policies(register: Any) -> None:
    """Register resize policies: how a frame becomes the backend's input and back."""


@hookspec
def register_backends(register: Any) -> None:
    """Register depth backends (image → depth map)."""


@hookspec
def register_postprocessors(register: Any) -> None:
    """Register depth postprocessors (invert, normalise, smooth, …)."""


@hookspec
def register_sinks(register: Any) -> None:
    """Register sinks: where frames and depth maps go (files, windows, topics)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add subcommands to the ``edgedepth`` command line (``cli`` is a click group)."""
