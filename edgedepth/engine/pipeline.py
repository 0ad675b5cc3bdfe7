"""Pipeline assembly: the stages a config names, built in order (source first: its frame size
decides the backend's input size), each wrapped as a :class:`Stage` that can be named in messages
and timings. :func:`open_front` opens the front of a pipeline (source, resize policy, input size)
for both ``edgedepth run`` and the deploy tool; :meth:`Pipeline.run` streams it (see
:mod:`edgedepth.engine.run`)."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
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


def check_config(loaded: LoadedConfig, registry: Registry) -> str:
    """What ``edgedepth check`` does: every plugin's options validated, the source opened and
    closed (a missing camera, video or image folder fails here), the input size computed, and
    each stage's own ``check`` (registered with it) run. Returns a one-line summary."""
    spec = claim_outputs(resolve_config(loaded, registry), loaded.label)
    front = open_front(loaded, spec)
    front.close()
    context = front.context
    for item in [spec.backend, *spec.postprocessors, *spec.sinks]:
        check = item.registration.check
        if check is None:
            continue
        try:
            check(item.options, context)
        except EdgedepthError as exc:
            raise type(exc)(f"{loaded.label}: {item.key}: {exc}") from exc
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
    ) -> Pipeline:
        """Validate every plugin's options, then build the stages in order. ``extra_sinks``
        (name → sink object) run after the config's own sinks, e.g. a scorer. Closes what was
        built if a later stage fails to start."""
        spec = claim_outputs(resolve_config(loaded, registry), loaded.label)
        front = open_front(loaded, spec)
        context = front.context
        built: list[Stage] = []
        try:
            backend = build_stage(spec.backend, context, loaded.label)
            built.append(backend)
            context.depth_range = getattr(backend.obj, "depth_range", None)
            for item in [*spec.postprocessors, *spec.sinks]:
                built.append(build_stage(item, context, loaded.label))
        except BaseException:
            for stage in reversed(built):
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
        )

    def run(self) -> RunResult:
        """Stream until the source ends, a stage fails or asks to stop, or Ctrl-C / SIGTERM
        (raised as ``KeyboardInterrupt`` in the calling thread). Every stage is closed and every
        sink finalised on every way out."""
        return PipelineRun(self).run()
