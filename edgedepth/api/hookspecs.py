"""The extension points of edgedepth: every source, resize policy, backend, postprocessor and
sink, built-in or not, is registered through these hooks.

A plugin implements one or more of them with :data:`edgedepth.hookimpl`::

    @edgedepth.hookimpl
    def register_backends(register):
        register("sleepy", SleepyOptions, SleepyBackend, description="sleeps, returns zeros")

``register(name, options_model, factory, description="")``: ``options_model`` is a pydantic
model (subclass :class:`edgedepth.StrictModel`) validated from the YAML section (all keys but
``type``/``policy``); ``factory`` is called as ``factory(options, context)`` with a
:class:`edgedepth.BuildContext` and returns the stage object described in
:mod:`edgedepth.api.stages`. A plugin without options leaves the model out:
``register(name, factory, description="")`` (its factory gets an empty options object).
``check=`` (keyword) adds a cheap check that ``edgedepth check`` runs without building the stage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, overload

import pluggy
from pydantic import BaseModel

hookspec = pluggy.HookspecMarker("edgedepth")
hookimpl = pluggy.HookimplMarker("edgedepth")

#: What a factory is: ``factory(options, context) -> stage object``.
Factory = Callable[[Any, Any], Any]
#: ``check(options, context)``, run by ``edgedepth check`` once the source is open
#: (``context.input_size`` known): raise an ``EdgedepthError`` for what the run would fail on.
#: A backend's check also says what its depth will mean (``context.depth_kind``), so that the
#: sinks' checks refuse what needs metres (point clouds) as the run would.
Checker = Callable[[Any, Any], None]


class Register(Protocol):
    """The ``register`` callback of the ``register_*`` hooks."""

    @overload
    def __call__(
        self,
        name: str,
        options: type[BaseModel],
        factory: Factory,
        description: str = "",
        *,
        check: Checker | None = None,
    ) -> None: ...

    @overload
    def __call__(
        self, name: str, factory: Factory, description: str = "", *, check: Checker | None = None
    ) -> None: ...

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> None: ...


@hookspec
def register_sources(register: Register) -> None:
    """Register frame sources (video files, image folders, cameras, …)."""


@hookspec
def register_resize_policies(register: Register) -> None:
    """Register resize policies: how a frame becomes the backend's input and back."""


@hookspec
def register_backends(register: Register) -> None:
    """Register depth backends (image → depth map)."""


@hookspec
def register_postprocessors(register: Register) -> None:
    """Register depth postprocessors (invert, normalise, smooth, …)."""


@hookspec
def register_sinks(register: Register) -> None:
    """Register sinks: where frames and depth maps go (files, windows, topics)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add subcommands to the ``edgedepth`` command line (``cli`` is a click group)."""
