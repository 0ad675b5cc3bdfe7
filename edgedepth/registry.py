"""The plugin manager: loads built-in, installed and config-named plugins and collects what
they register, by kind and name."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
from pydantic import BaseModel

from edgedepth import hookspecs
from edgedepth.errors import ConfigError, PluginError

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
    "edgedepth.plugins.video_sink",
    "edgedepth.plugins.display_sink",
    "edgedepth.plugins.topic_sink",
    "edgedepth.deploy.cli",
    "edgedepth.plugins.bench_command",
    "edgedepth.plugins.eval_command",
    "edgedepth.plugins.doctor_command",
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
        except Exception as exc:  # a broken third-party package must be named, not crash
            raise PluginError(f"loading installed plugins ({ENTRY_POINT_GROUP!r}): {exc}") from exc
        self._by_kind = None

    def load_spec(self, spec: str, base_dir: Path, where: str) -> None:
        """Load a plugin named in a config: an importable module or a ``.py`` path."""
        if spec.endswith(".py") or "/" in spec or "\\" in spec:
            path = (base_dir / spec).resolve()
            if not path.is_file():
                raise ConfigError(f"{where}: plugin file not found: {path}")
            module_name = f"edgedepth_user_plugin_{path.stem}_{abs(hash(str(path))):x}"
            module = sys.modules.get(module_name)
            if module is None:
                module_spec = importlib.util.spec_from_file_location(module_name, path)
                assert module_spec is not None and module_spec.loader is not None
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[module_name] = module
                try:
                    module_spec.loader.exec_module(module)
                except Exception as exc:
                    del sys.modules[module_name]
                    raise PluginError(f"{where}: cannot load plugin {path}: {exc!r}") from exc
            self.add_module(module, str(path))
        else:
            try:
                module = importlib.import_module(spec)
            except Exception as exc:
                raise PluginError(f"{where}: cannot import plugin {spec!r}: {exc!r}") from exc
            self.add_module(module, spec)

    def _collect(self) -> dict[str, dict[str, Registration]]:
        by_kind: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        for kind, (hook_name, label) in KINDS.items():
            hook = getattr(self.plugin_manager.hook, hook_name)
            # Call each implementation on its own so every name is attributed to its plugin.
            for impl in reversed(hook.get_hookimpls()):
                plugin_name = impl.plugin_name

                def register(
                    name: str,
                    options: type[BaseModel],
                    factory: Callable[..., Any],
                    description: str = "",
                    *,
                    _kind: str = kind,
                    _label: str = label,
                    _plugin: str = plugin_name,
                ) -> None:
                    _check_registration(_label, name, options, factory, _plugin)
                    existing = by_kind[_kind].get(name)
                    if existing is not None:
                        raise PluginError(
                            f"{_label} {name!r} is registered by two plugins: "
                            f"{existing.plugin!r} and {_plugin!r}"
                        )
                    by_kind[_kind][name] = Registration(
                        _kind, name, options, factory, _plugin, description
                    )

                try:
                    impl.function(register)
                except PluginError:
                    raise
                except Exception as exc:
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

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        """Machine-readable listing, as printed by ``edgedepth plugins --json``."""
        return {
            kind: [
                {
                    "name": reg.name,
                    "plugin": reg.plugin,
                    "description": reg.description,
                    "options": reg.options.model_json_schema(),
                }
                for reg in sorted(regs.values(), key=lambda r: r.name)
            ]
            for kind, regs in self.by_kind.items()
        }


def _check_registration(label: str, name: Any, options: Any, factory: Any, plugin: str) -> None:
    if not isinstance(name, str) or not name:
        raise PluginError(f"plugin {plugin!r} registered a {label} without a name: {name!r}")
    if not (isinstance(options, type) and issubclass(options, BaseModel)):
        raise PluginError(
            f"plugin {plugin!r}: {label} {name!r}: options must be a pydantic model class"
        )
    if not callable(factory):
        raise PluginError(f"plugin {plugin!r}: {label} {name!r}: factory is not callable")


def load_registry(
    extra_plugins: Iterable[str] = (), base_dir: Path | None = None, source: str = "plugins"
) -> Registry:
    """Built-ins, then installed entry points, then plugins named in a config."""
    registry = Registry()
    registry.load_builtins()
    registry.load_entry_points()
    for i, spec in enumerate(extra_plugins):
        registry.load_spec(spec, base_dir or Path.cwd(), f"{source}[{i}]")
    return registry
