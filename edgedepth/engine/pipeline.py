"""Pipeline assembly: the stages a config names, built in order (source first: its frame size
decides the backend's input size), each wrapped as a :class:`Stage` that can be named in messages
and timings. :func:`open_front` opens the front of a pipeline (source, resize policy, input size)
for both ``edgedepth run`` and the deploy tool; :meth:`Pipeline.run` streams it (see
:mod:`edgedepth.engine.run`). A :class:`BackendPool` keeps backends built between the runs of one
process, so that a model is loaded once for many sources (``edgedepth batch``)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgedepth.api.errors import ConfigError, EdgedepthError, PluginError
from edgedepth.api.options import output_fields
from edgedepth.api.outputs import WritesFiles, claim_output, existing_files
from edgedepth.api.stages import BuildContext, Sink
from edgedepth.engine.config import LoadedConfig, RuntimeConfig, default_cache_dir
from edgedepth.engine.registry import KINDS, PipelineSpec, Registry, StageSpec, resolve_config
from edgedepth.engine.run import PipelineRun, RunResult, Stage

log = logging.getLogger("edgedepth")


def build_stage(spec: StageSpec, context: BuildContext, label: str) -> Stage:
    """Call the plugin's factory; its failures become one-line errors naming file and key."""
    registration = spec.registration
    try:
        obj = registration.factory(spec.options, context)
    except EdgedepthError as exc:
        raise type(exc)(f"{label}: {spec.key}: {exc}") from exc
    except Exception as exc:
        raise PluginError(
            f"{label}: {spec.key}: {KINDS[registration.kind][1]} {registration.name!r} "
            f"(plugin {registration.plugin}) failed to start: {type(exc).__name__}: {exc}"
        ) from exc
    return Stage(KINDS[registration.kind][1], registration.name, registration.plugin, obj)


@dataclass
class _KeptBackend:
    stage: Stage
    #: What it added to ``context.notes`` when it was built: every run it serves shows them.
    notes: list[str]
    #: The ``stop_requested`` of the context it was built with (the one it may wait on).
    stop_requested: threading.Event
    key: str


class BackendPool:
    """Backends kept built between the runs of one process: a run given the pool borrows an
    idle backend built from the same section (the same plugin, options and cache) instead of
    building one, and gives it back when it ends, with its sessions and caches as they are;
    ``edgedepth batch`` loads a model once per worker process, not once per input. A backend is
    never lent to two runs at once (a second concurrent run gets one of its own).

    A backend that served a stopped or failed run is closed, never lent again: ``cancel()`` is
    one-way, and a failed call may leave it in any state. A borrowed backend keeps the context it
    was built with; the run stops it through ``cancel()``. When a section of another config
    asks, the idle backends of the old one are closed (a worker holds one model)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[str, list[_KeptBackend]] = {}
        self._lent: dict[int, _KeptBackend] = {}
        #: Backends this pool has built.
        self.built = 0

    def lend(self, spec: StageSpec, context: BuildContext, label: str) -> tuple[Stage, bool]:
        """An idle backend for ``spec`` (its notes added to ``context``), or one built in
        ``context`` now; and whether it was built now."""
        registration = spec.registration
        options = repr(spec.options.model_dump())
        key = f"{registration.plugin}:{registration.name}:{context.cache_dir}:{options}"
        with self._lock:
            stale = []
            for other in [other for other in self._idle if other != key]:
                stale += self._idle.pop(other)
            idle = self._idle.get(key)
            kept = idle.pop() if idle else None
        for old in stale:
            old.stage.close_quietly()
        built = kept is None
        if kept is None:
            before = len(context.notes)
            stage = build_stage(spec, context, label)
            stage.lent = True
            kept = _KeptBackend(stage, context.notes[before:], context.stop_requested, key)
            with self._lock:
                self.built += 1
        else:
            context.notes.extend(kept.notes)
        with self._lock:
            self._lent[id(kept.stage)] = kept
        return kept.stage, built

    def give_back(self, stage: Stage, stopped: bool = False, busy: bool = False) -> None:
        """End a loan: kept for the next run, or (after a stopped or failed run) closed; a
        backend still ``busy`` inside a call that could not be cancelled is left to it."""
        with self._lock:
            kept = self._lent.pop(id(stage))
            if not stopped and not busy:
                self._idle.setdefault(kept.key, []).append(kept)
                return
        kept.stop_requested.set()  # a wait inside it returns
        if not busy:
            stage.close_quietly()

    def close(self) -> None:
        """Close every idle backend."""
        with self._lock:
            idle = [kept for kept_list in self._idle.values() for kept in kept_list]
            self._idle.clear()
        for kept in idle:
            kept.stage.close_quietly()


@dataclass
class PipelineFront:
    """The opened source and resize policy of a config: they decide the backend's input size
    (``context.input_size``) and the run mode (``context.mode``)."""

    context: BuildContext
    source: Stage
    resize: Stage

    def close(self) -> None:
        for stage in (self.resize, self.source):
            stage.close_quietly()


def open_front(loaded: LoadedConfig, spec: PipelineSpec) -> PipelineFront:
    """Build the source, then the resize policy, in a new :func:`build_context` with
    ``context.source``, ``.mode`` and ``.input_size`` filled in. Closes the source if the resize
    policy cannot be built."""
    context = build_context(loaded)
    source_stage = build_stage(spec.source, context, loaded.label)
    try:
        info = source_stage.obj.info
        context.source = info
        requested = loaded.config.runtime.mode
        context.mode = ("live" if info.live else "file") if requested == "auto" else requested
        resize_stage = build_stage(spec.resize, context, loaded.label)
        context.input_size = tuple(resize_stage.obj.input_size(info.height, info.width))  # type: ignore[assignment]
    except BaseException:
        source_stage.close_quietly()
        raise
    return PipelineFront(context, source_stage, resize_stage)


#: What a plugin's options without an ``existing`` key get: a refusal that says what to do.
NO_POLICY_HINT = "move or delete it (this plugin has no `existing` option)"


def claim_outputs(spec: PipelineSpec, label: str) -> PipelineSpec:
    """Every file and folder the stages will write (their ``OutputPath``/``OutputDir``
    options), claimed by their ``existing`` policy before anything is opened
    (:mod:`edgedepth.api.outputs`): an earlier run's output is refused in one line naming it,
    or kept for replacing, or left alone for a new name (the spec returned holds it). Options
    without the policy refuse. Raises :class:`ConfigError`."""
    taken: set[Path] = set()

    def claim(item: StageSpec) -> StageSpec:
        options = item.options
        updates: dict[str, Path] = {}
        for name in output_fields(type(options)):
            path = getattr(options, name)
            if path is None:
                continue
            if isinstance(options, WritesFiles):
                occupied = functools.partial(options.occupied, name)
                existing, hint = options.existing, options.existing_hint
            else:
                occupied, existing, hint = existing_files, "refuse", NO_POLICY_HINT
            where = f"{label}: {item.key}.{name}"
            try:
                final = claim_output(Path(path), existing, where, occupied, taken, hint)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            taken.add(final)
            if final != path:
                updates[name] = final
        if not updates:
            return item
        return dataclasses.replace(item, options=options.model_copy(update=updates))

    return dataclasses.replace(
        spec,
        source=claim(spec.source),
        resize=claim(spec.resize),
        backend=claim(spec.backend),
        postprocessors=[claim(item) for item in spec.postprocessors],
        sinks=[claim(item) for item in spec.sinks],
    )


def build_context(loaded: LoadedConfig) -> BuildContext:
    """The context every factory of this config is given (mode and sizes are filled in as the
    front of the pipeline is opened)."""
    return BuildContext(
        config_path=loaded.path,
        mode="file",
        cache_dir=loaded.config.runtime.cache_dir or default_cache_dir(),
    )


def follow_depth_kind(context: BuildContext, postprocessor: object) -> None:
    """``context.depth_kind`` after a postprocessor (its optional ``depth_kind_after``)."""
    after = getattr(postprocessor, "depth_kind_after", None)
    if context.depth_kind is not None and after is not None:
        context.depth_kind = after(context.depth_kind)


def check_config(loaded: LoadedConfig, registry: Registry) -> str:
    """What ``edgedepth check`` does: every plugin's options validated, the source opened and
    closed (a missing camera, video or image folder fails here), the input size computed, and
    each stage's own ``check`` (registered with it) run. Returns a one-line summary."""
    spec = claim_outputs(resolve_config(loaded, registry), loaded.label)
    front = open_front(loaded, spec)
    front.close()
    context = front.context

    def check(item: StageSpec) -> None:
        if item.registration.check is None:
            return
        try:
            item.registration.check(item.options, context)
        except EdgedepthError as exc:
            raise type(exc)(f"{loaded.label}: {item.key}: {exc}") from exc

    for item in [spec.backend, *spec.postprocessors]:
        check(item)  # a backend's check may say its depth kind (context.depth_kind)
    if context.depth_kind is not None:
        for item in spec.postprocessors:  # built in an instant, holding nothing open
            stage = build_stage(item, context, loaded.label)
            follow_depth_kind(context, stage.obj)
            stage.close_quietly()
    for item in spec.sinks:
        check(item)
    info = context.source
    assert info is not None and context.input_size is not None
    height, width = context.input_size
    return f"{info.width}×{info.height} {context.mode} source → {width}×{height} backend input"


@dataclass
class Pipeline:
    """Every stage of a config, built and ready to :meth:`run`."""

    front: PipelineFront
    backend: Stage
    postprocessors: list[Stage]
    sinks: list[Stage]
    runtime: RuntimeConfig
    #: Bring the backend's depth back to the captured frame's size before postprocessing.
    restore_size: bool = True
    #: Where the backend was borrowed from (None: built for this pipeline, closed by its run).
    backends: BackendPool | None = field(default=None, repr=False)
    #: The backend was built for this pipeline (False: an idle one of ``backends`` was lent).
    backend_built: bool = True

    @property
    def context(self) -> BuildContext:
        return self.front.context

    @property
    def source(self) -> Stage:
        return self.front.source

    @property
    def resize(self) -> Stage:
        return self.front.resize

    @property
    def stages(self) -> list[Stage]:
        """Every stage, in the order data flows through them."""
        return [self.source, self.resize, self.backend, *self.postprocessors, *self.sinks]

    @classmethod
    def from_config(
        cls,
        loaded: LoadedConfig,
        registry: Registry,
        extra_sinks: Mapping[str, Sink] | None = None,
        backends: BackendPool | None = None,
    ) -> Pipeline:
        """Validate every plugin's options, then build the stages in order. ``extra_sinks``
        (name → sink object) run after the config's own sinks, e.g. a scorer. With
        ``backends``, the backend is borrowed from that pool (built there if it has none idle)
        and given back by :meth:`run`. Closes what was built if a later stage fails to start."""
        spec = claim_outputs(resolve_config(loaded, registry), loaded.label)
        front = open_front(loaded, spec)
        context = front.context
        built: list[Stage] = []
        backend_built = True
        try:
            if backends is None:
                backend = build_stage(spec.backend, context, loaded.label)
            else:
                backend, backend_built = backends.lend(spec.backend, context, loaded.label)
            built.append(backend)
            context.depth_range = getattr(backend.obj, "depth_range", None)
            context.depth_kind = getattr(backend.obj, "depth_kind", None)
            for item in spec.postprocessors:
                built.append(build_stage(item, context, loaded.label))
                follow_depth_kind(context, built[-1].obj)
            for item in spec.sinks:
                built.append(build_stage(item, context, loaded.label))
        except BaseException:
            for stage in reversed(built):
                if stage.lent and backends is not None:
                    backends.give_back(stage)
                else:
                    stage.close_quietly()
            front.close()
            raise
        postprocessors = built[1 : 1 + len(spec.postprocessors)]
        sinks = built[1 + len(spec.postprocessors) :]
        sinks += [
            Stage("sink", name, "edgedepth", obj) for name, obj in (extra_sinks or {}).items()
        ]
        info = context.source
        assert info is not None
        log.info(
            "pipeline: %s %dx%d (%s mode) → %s %d×%d (first frame) → %s",
            front.source.name,
            info.width,
            info.height,
            context.mode,
            front.resize.name,
            *context.input_size,
            backend.name,
        )
        return cls(
            front,
            backend,
            postprocessors,
            sinks,
            loaded.config.runtime,
            loaded.config.preprocess.restore_size,
            backends,
            backend_built,
        )

    def run(self, on_frame: Callable[[], None] | None = None) -> RunResult:
        """Stream until the source ends, a stage fails or asks to stop, or Ctrl-C / SIGTERM
        (raised as ``KeyboardInterrupt`` in the calling thread). Every stage is closed and every
        sink finalised on every way out; a borrowed backend goes back to its pool.
        ``on_frame`` is called (from a stage's thread) for each frame every sink finished."""
        result: RunResult | None = None
        try:
            result = PipelineRun(self, on_frame).run()
        finally:
            if self.backends is not None and self.backend.lent:
                self.backends.give_back(
                    self.backend,
                    stopped=result is None or self.context.stop_requested.is_set(),
                    busy=result is not None and "backend" in result.unfinished,
                )
        return result
