"""The plugin manager: loads built-in, installed and config-named plugins and collects what
they register, by kind and name."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
from pydantic import BaseModel

from edgedepth.api import hookspecs
from edgedepth.api.errors import ConfigError, PluginError
from edgedepth.api.options import StrictModel, described
from edgedepth.engine.config import LoadedConfig, PluginSection, format_location, validate

ENTRY_POINT_GROUP = "edgedepth"

#: The built-ins, loaded exactly like third-party plugins (they only use the hooks).
BUILTIN_PLUGINS = (
    "edgedepth.plugins.video_source",
    "edgedepth.plugins.images_source",
    "edgedepth.plugins.camera_source",
    "edgedepth.plugins.synthetic_source",
    "edgedepth.plugins.resize_policies",
    "edgedepth.plugins.dav2_backend",
    "edgedepth.plugins.postprocessors",
    "edgedepth.plugins.npy_sink",
    "edgedepth.plugins.ply_sink",
    "edgedepth.plugins.video_sink",
    "edgedepth.plugins.display_sink",
    "edgedepth.plugins.topic_sink",
    "edgedepth.plugins.mcap_sink",
    "edgedepth.deploy.cli",
    "edgedepth.plugins.bench_command",
    "edgedepth.plugins.eval_command",
    "edgedepth.plugins.doctor_command",
    "edgedepth.plugins.cameras_command",
    "edgedepth.plugins.batch_command",
)

#: kind (as in ``edgedepth plugins --json``) → (hook name, singular label for messages)
KINDS: dict[str, tuple[str, str]] = {
    "sources": ("register_sources", "source"),
    "resize": ("register_resize_policies", "resize policy"),
    "backends": ("register_backends", "backend"),
    "postprocessors": ("register_postprocessors", "postprocessor"),
    "sinks": ("register_sinks", "sink"),
}


@dataclass(frozen=True)
class Registration:
    """One registered name: how to validate its options and build it."""

    kind: str
    name: str
    options: type[BaseModel]
    factory: Callable[..., Any]
    plugin: str
    description: str = ""
    #: ``check(options, context)``: what ``edgedepth check`` runs after opening the source
    #: (``context.input_size`` is known); raises an :class:`EdgedepthError` for a problem the
    #: run would fail on at once, without the cost of building the stage.
    check: Callable[[Any, Any], None] | None = None


class Registry:
    """All plugins of one run and the names they registered."""

    def __init__(self) -> None:
        self.plugin_manager = pluggy.PluginManager("edgedepth")
        self.plugin_manager.add_hookspecs(hookspecs)
        self._by_kind: dict[str, dict[str, Registration]] | None = None

    def add_module(self, module: ModuleType, name: str) -> None:
        if self.plugin_manager.get_plugin(name) is not None:
            return
        try:
            self.plugin_manager.register(module, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} is not a valid edgedepth plugin: {exc}") from exc
        self._by_kind = None

    def load_builtins(self) -> None:
        for module_name in BUILTIN_PLUGINS:
            self.add_module(importlib.import_module(module_name), module_name)

    def load_entry_points(self) -> None:
        try:
            self.plugin_manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except (Exception, SystemExit) as exc:  # a broken package is named, never fatal
            raise PluginError(f"loading installed plugins ({ENTRY_POINT_GROUP!r}): {exc}") from exc
        self._by_kind = None

    def load_spec(self, spec: str, base_dir: Path, where: str) -> None:
        """Load a plugin named in a config: an importable module or a ``.py`` path."""
        if spec.endswith(".py") or "/" in spec or "\\" in spec:
            path = (base_dir / spec).resolve()
            if not path.is_file():
                raise ConfigError(f"{where}: plugin file not found: {path}")
            if path.suffix != ".py":
                raise ConfigError(f"{where}: {path} is not a plugin: a plugin file is a .py file")
            module_name = f"edgedepth_user_plugin_{path.stem}_{abs(hash(str(path))):x}"
            module = sys.modules.get(module_name)
            if module is None:
                module_spec = importlib.util.spec_from_file_location(module_name, path)
                assert module_spec is not None and module_spec.loader is not None
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[module_name] = module
                try:
                    module_spec.loader.exec_module(module)
                except (Exception, SystemExit) as exc:  # a plugin that exits must not end us
                    del sys.modules[module_name]
                    raise PluginError(f"{where}: cannot load plugin {path}: {exc!r}") from exc
            self.add_module(module, str(path))
        else:
            try:
                module = importlib.import_module(spec)
            except (Exception, SystemExit) as exc:
                raise PluginError(f"{where}: cannot import plugin {spec!r}: {exc!r}") from exc
            self.add_module(module, spec)

    def _collect(self) -> dict[str, dict[str, Registration]]:
        by_kind: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        for kind, (hook_name, label) in KINDS.items():
            hook = getattr(self.plugin_manager.hook, hook_name)
            # Call each implementation on its own so every name is attributed to its plugin.
            for impl in reversed(hook.get_hookimpls()):
                plugin_name = impl.plugin_name

                register = _Registrar(by_kind[kind], kind, label, plugin_name)
                try:
                    impl.function(register)
                except PluginError:
                    raise
                except (Exception, SystemExit) as exc:
                    raise PluginError(
                        f"plugin {plugin_name!r} failed in {hook_name}: {exc!r}"
                    ) from exc
        return by_kind

    @property
    def by_kind(self) -> dict[str, dict[str, Registration]]:
        if self._by_kind is None:
            self._by_kind = self._collect()
        return self._by_kind

    def get(self, kind: str, name: str, where: str) -> Registration:
        """The registration of ``name``; a :class:`ConfigError` listing the known names if none."""
        registered = self.by_kind[kind]
        if name not in registered:
            label = KINDS[kind][1]
            known = ", ".join(sorted(registered)) or "none"
            raise ConfigError(f"{where}: unknown {label} {name!r} (registered: {known})")
        return registered[name]

    def build(self, kind: str, name: str, options: dict[str, Any], context: Any) -> Any:
        """Build one stage by name, its options validated as in a config (for scripts and
        benchmarks that drive a single stage: ``registry.build("backends", "dav2-relative",
        {"random_weights": True}, context)``)."""
        registration = self.get(kind, name, f"{KINDS[kind][1]} {name!r}")
        validated = validate(registration.options, options, f"{KINDS[kind][1]} {name!r}")
        return registration.factory(validated, context)

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        """Machine-readable listing, as printed by ``edgedepth plugins --json``."""
        return {
            kind: [
                {
                    "name": reg.name,
                    "plugin": reg.plugin,
                    "description": reg.description,
                    "options": described(reg.options).model_json_schema(),
                }
                for reg in sorted(regs.values(), key=lambda r: r.name)
            ]
            for kind, regs in self.by_kind.items()
        }


class NoOptions(StrictModel):
    """The options of a plugin registered without a model: none (any key is an error)."""


class _Registrar:
    """The ``register`` callback handed to each hook implementation (see
    :class:`edgedepth.api.hookspecs.Register`): records names for one kind and one plugin."""

    def __init__(
        self, registered: dict[str, Registration], kind: str, label: str, plugin: str
    ) -> None:
        self.registered, self.kind, self.label, self.plugin = registered, kind, label, plugin

    def __call__(
        self,
        name: str,
        options: type[BaseModel] | Callable[..., Any],
        factory: Callable[..., Any] | str | None = None,
        description: str = "",
        *,
        check: Callable[[Any, Any], None] | None = None,
    ) -> None:
        if not (isinstance(options, type) and issubclass(options, BaseModel)):
            # register(name, factory[, description]): a plugin without options
            if isinstance(factory, str):
                description, factory = factory, None
            if factory is not None:
                raise PluginError(
                    f"plugin {self.plugin!r}: {self.label} {name!r}: options must be a pydantic "
                    "model class (or leave them out: register(name, factory, description))"
                )
            options, factory = NoOptions, options
        _check_registration(self.label, name, options, factory, self.plugin)
        if check is None and not isinstance(factory, type):
            # A capability declared on the factory (an ONNX backend's checks its model file).
            check = getattr(factory, "check", None)
        existing = self.registered.get(name)
        if existing is not None:
            raise PluginError(
                f"{self.label} {name!r} is registered by two plugins: "
                f"{existing.plugin!r} and {self.plugin!r}"
            )
        self.registered[name] = Registration(
            self.kind, name, options, factory, self.plugin, description, check
        )


@dataclass(frozen=True)
class StageSpec:
    """One stage of a config, resolved: the registration it names and its validated options."""

    #: Where it is in the config, for messages: ``source``, ``postprocess[0]``, ``sinks[1]``.
    key: str
    registration: Registration
    options: BaseModel


@dataclass(frozen=True)
class PipelineSpec:
    """Every stage a config names, each resolved and validated (what ``edgedepth check`` does
    first, and what a pipeline is built from)."""

    source: StageSpec
    resize: StageSpec
    backend: StageSpec
    postprocessors: list[StageSpec]
    sinks: list[StageSpec]


def resolve_config(loaded: LoadedConfig, registry: Registry) -> PipelineSpec:
    """Look up the plugin of every section and validate its options with the plugin's model;
    the first problem is a one-line :class:`ConfigError` naming the file and key."""
    config = loaded.config

    def resolve(kind: str, name: str, options: dict[str, Any], loc: tuple[str | int, ...]):
        key = "policy" if kind == "resize" else "type"
        registration = registry.get(kind, name, f"{loaded.label}: {format_location([*loc, key])}")
        validated = validate(
            registration.options, options, loaded.label, loc, base_dir=loaded.base_dir
        )
        return StageSpec(format_location(loc), registration, validated)

    def section(kind: str, item: PluginSection, loc: tuple[str | int, ...]) -> StageSpec:
        return resolve(kind, item.type, item.options, loc)

    problems: list[str] = []

    def collect(make: Callable[[], StageSpec]) -> StageSpec | None:
        try:
            return make()
        except ConfigError as exc:  # report every section's problems at once
            problems.append(str(exc).removeprefix(f"{loaded.label}: "))
            return None

    resize = config.preprocess.resize
    if config.source is None:
        problems.append(
            "source: required key is missing (only `edgedepth batch` runs a config without "
            "one: each of its inputs is the source)"
        )
        source = None
    else:
        source = collect(lambda: section("sources", config.source, ("source",)))
    resize_spec = collect(
        lambda: resolve("resize", resize.policy, resize.options, ("preprocess", "resize"))
    )
    backend = collect(lambda: section("backends", config.backend, ("backend",)))
    postprocessors = [
        collect(lambda i=i, item=item: section("postprocessors", item, ("postprocess", i)))
        for i, item in enumerate(config.postprocess)
    ]
    sinks = [
        collect(lambda i=i, item=item: section("sinks", item, ("sinks", i)))
        for i, item in enumerate(config.sinks)
    ]
    if problems:
        raise ConfigError(f"{loaded.label}: " + " — also ".join(problems))
    return PipelineSpec(source, resize_spec, backend, postprocessors, sinks)  # type: ignore[arg-type]


def describe_options(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Each option of ``model`` as ``key: type = default``, its description wrapped on the
    lines below it (indented); the options of a nested section as ``section.key``."""
    lines = []
    for key, field in described(model).model_fields.items():
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            lines += describe_options(nested, f"{prefix}{key}.")
            continue
        if field.is_required():
            default = "(required)"
        else:
            default = f"= {field.get_default(call_default_factory=True)!r}"
        lines.append(f"{prefix}{key}: {_type_name(field.annotation)} {default}")
        # An attribute docstring keeps its source line breaks (and RST quotes): reflow it.
        words = (field.description or "").replace("``", "`").split()
        lines += ["    " + line for line in textwrap.wrap(" ".join(words), 88)]
    return lines or ["(no options)"]


def _type_name(annotation: Any) -> str:
    """``Literal['a', 'b']`` → ``a | b``; ``Optional[int]`` → ``int | None``; paths → path."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(str(arg) for arg in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if origin is not None:
        inner = ", ".join(_type_name(arg) for arg in args if arg is not Ellipsis)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "{" + ", ".join(annotation.model_fields) + "}"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _check_registration(label: str, name: Any, options: Any, factory: Any, plugin: str) -> None:
    if not isinstance(name, str) or not name:
        raise PluginError(f"plugin {plugin!r} registered a {label} without a name: {name!r}")
    if not (isinstance(options, type) and issubclass(options, BaseModel)):
        raise PluginError(
            f"plugin {plugin!r}: {label} {name!r}: options must be a pydantic model class"
        )
    if not callable(factory):
        raise PluginError(f"plugin {plugin!r}: {label} {name!r}: factory is not callable")


#: The one registry of this process (see :func:`load_registry`).
_process_registry: Registry | None = None


def load_registry(
    extra_plugins: Iterable[str] = (), base_dir: Path | None = None, source: str = "plugins"
) -> Registry:
    """The registry of this process: the built-ins and installed entry points, loaded once, then
    the plugins a config names (``extra_plugins``, relative to ``base_dir``) added to it. One
    plugin manager per process: the command line, the config and the deploy tool see the same
    plugins, and no plugin module is imported twice."""
    global _process_registry
    if _process_registry is None:
        registry = Registry()
        registry.load_builtins()
        registry.load_entry_points()
        _process_registry = registry
    for i, spec in enumerate(extra_plugins):
        _process_registry.load_spec(spec, base_dir or Path.cwd(), f"{source}[{i}]")
    return _process_registry
