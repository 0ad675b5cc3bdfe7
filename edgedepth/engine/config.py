"""The YAML config: schema, loading, ``--set`` overrides, and errors that name file and key."""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

from edgedepth.api.errors import ConfigError
from edgedepth.api.options import ConfigPath, StrictModel

ModelT = TypeVar("ModelT", bound=BaseModel)


def default_cache_dir() -> Path:
    """Where exports and compiled models are cached: ``$EDGEDEPTH_CACHE`` or ~/.cache/edgedepth."""
    return Path(os.environ.get("EDGEDEPTH_CACHE", Path.home() / ".cache" / "edgedepth"))


# --- the schema ---------------------------------------------------------------------------------


class PluginSection(BaseModel):
    """``{type: NAME, ...options}``: the options are validated by the plugin's own model."""

    model_config = ConfigDict(extra="allow", defer_build=True)
    type: str
    """The registered name of the plugin (``edgedepth plugins`` lists them)."""

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ResizeSection(BaseModel):
    """``{policy: NAME, ...options}``: the options are validated by the policy's own model."""

    model_config = ConfigDict(extra="allow", defer_build=True)
    policy: str = "none"
    """fixed | keep-aspect | letterbox | none, or a plugin's policy."""

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class PreprocessConfig(StrictModel):
    resize: ResizeSection = Field(default_factory=ResizeSection)
    """How a frame becomes the backend's input (and the depth comes back)."""
    restore_size: bool = True
    """Bring the backend's depth back to the captured frame's size before postprocessing."""


class RuntimeConfig(StrictModel):
    mode: Literal["auto", "live", "file"] = "auto"
    """live: newest frame wins, stale frames dropped and counted; file: every frame, in order."""
    queue_size: int = Field(4, ge=1, le=1024)
    """Capacity of each queue between stages in file mode. Live mode always holds 1 (latest
    wins)."""
    queue_mb: float = Field(64.0, gt=0)
    """File mode: each queue also holds at most this many MB of frames (always one frame, however
    large), so 4K frames queue fewer than VGA ones."""
    max_frames: int | None = Field(None, ge=1)
    """Stop after this many frames (None: until the source ends)."""
    progress: bool | None = None
    """Progress bar for file sources: None shows it when stderr is a terminal (or as
    ``$EDGEDEPTH_PROGRESS`` says)."""
    cache_dir: ConfigPath | None = None
    """Where exports and compiled binaries are cached (~/.cache/edgedepth or $EDGEDEPTH_CACHE)."""
    summary: bool = True
    """Print the per-stage summary table at the end."""


class PipelineConfig(StrictModel):
    plugins: list[str] = Field(default_factory=list)
    """Extra plugin modules or .py files (relative to the config)."""
    source: PluginSection | None = None
    """Where frames come from: video | images | camera | synthetic. Required, except by
    ``edgedepth batch``, which gives each of its inputs as the source."""
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    """The resize policy."""
    backend: PluginSection
    """The depth model: dav2-relative | dav2-metric, or a plugin's."""
    postprocess: list[PluginSection] = Field(default_factory=list)
    """Depth postprocessors, in order: invert | normalize | clip | resize | temporal."""
    sinks: list[PluginSection] = Field(default_factory=list)
    """Where finished frames go: display | video | npy | topic | mcap."""
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    """How the stages run: mode, queues, progress, cache."""


class LoadedConfig(typing.NamedTuple):
    path: Path | None
    config: PipelineConfig

    @property
    def label(self) -> str:
        return self.path.name if self.path else "<config>"

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()


# --- loading ------------------------------------------------------------------------------------

#: Nodes a config may hold once its aliases are expanded: a real config has a few hundred; an
#: alias bomb ("billion laughs") billions, which validating would take forever to walk.
MAX_CONFIG_NODES = 100_000


class ConfigYamlError(yaml.YAMLError):
    """YAML that parses but is refused as a config (duplicate keys, alias bombs)."""

    def __init__(self, problem: str, mark: yaml.Mark | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def load_yaml(text: str) -> Any:
    """YAML as :func:`yaml.safe_load` reads it, but refusing what a config never needs and a
    mistake or an attack makes: a key given twice in one mapping (the second would silently
    win), recursive aliases, and aliases that expand beyond :data:`MAX_CONFIG_NODES` nodes."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_nodes(root: yaml.Node) -> None:
    sizes: dict[int, int] = {}
    walking: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]  # an alias: counted again, walked once
        if key in walking:
            raise ConfigYamlError(
                "a recursive alias (an anchor used inside itself)", node.start_mark
            )
        walking.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            _no_duplicate_keys(node)
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        for child in children:
            total += size(child)
            if total > MAX_CONFIG_NODES:
                raise ConfigYamlError(
                    f"aliases expand to more than {MAX_CONFIG_NODES} values (an alias bomb?)",
                    node.start_mark,
                )
        walking.discard(key)
        sizes[key] = total
        return total

    size(root)


def _no_duplicate_keys(node: yaml.MappingNode) -> None:
    first: dict[tuple[str, str], yaml.Mark] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = (key_node.tag, key_node.value)
        if key in first:
            raise ConfigYamlError(
                f"key {key_node.value!r:.60} appears twice in one mapping (first on line "
                f"{first[key].line + 1}): the second would silently replace the first",
                key_node.start_mark,
            )
        first[key] = key_node.start_mark


def load_config(path: Path, overrides: typing.Sequence[str] = ()) -> LoadedConfig:
    """Read, override and validate a config file (plugin options are validated later, once the
    plugins are loaded)."""
    label = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); a config is YAML text"
        ) from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{label}: invalid YAML{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{label}: the top level must be a mapping of keys, not {type(raw).__name__}"
        )
    for override in overrides:
        apply_override(raw, override)
    config = validate(PipelineConfig, raw, label, base_dir=path.parent)
    return LoadedConfig(path, config)


#: The keys that name a section's plugin (``resize`` names its policy).
PLUGIN_KEYS = ("type", "policy")


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply ``key.path=value`` (``sinks[1].path=x.mp4`` or ``sinks.1.path=x.mp4``) in place;
    the value is parsed as YAML (``3`` is an int, ``[1, 2]`` a list, ``null`` None). Changing a
    section's ``type`` (or ``policy``) drops the other keys of that section, so
    ``--set source.type=video --set source.path=clip.mp4`` switches the source."""
    key, sep, value_text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {override!r}: expected KEY.PATH=VALUE")
    try:
        value = load_yaml(value_text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"--set {key}: value {value_text!r:.80}: {problem}") from None
    parts: list[str | int] = []
    for token in key.strip().replace("]", "").replace("[", ".").split("."):
        if token == "":
            raise ConfigError(f"--set {key}: malformed key path")
        parts.append(int(token) if token.isdigit() else token)
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = format_location(parts[: depth + 1])
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                raise ConfigError(f"--set {key}: {where}: no such list item")
            if last:
                node[part] = value
            else:
                node = node[part]
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {where}: parent is not a mapping")
            if last and part in PLUGIN_KEYS and node.get(part, value) != value:
                # Another plugin in this section: the old one's options mean nothing to it.
                node.clear()
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})


def format_location(loc: typing.Sequence[str | int]) -> str:
    """('sinks', 1, 'path') → 'sinks[1].path'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validate(
    model: type[ModelT],
    data: Any,
    label: str,
    prefix: typing.Sequence[str | int] = (),
    base_dir: Path | None = None,
) -> ModelT:
    """Validate ``data`` against ``model``; problems become a one-line :class:`ConfigError`
    such as ``metric.yaml: sinks[1].path: parent directory does not exist`` (several are
    joined with "— also")."""
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        # A typo'd key usually also makes a required key "missing": report the typo first,
        # and not the missing key it stands for.
        errors = sorted(exc.errors(), key=lambda error: error["type"] != "extra_forbidden")
        meant = {
            (*error["loc"][:-1], suggestion)
            for error in errors
            if (suggestion := _suggested_key(model, error)) is not None
        }
        problems = [
            f"{format_location([*prefix, *error['loc']]) or '(top level)'}: "
            f"{_describe_error(model, error, data)}"
            for error in errors
            if not (error["type"] == "missing" and tuple(error["loc"]) in meant)
        ]
        raise ConfigError(f"{label}: " + " — also ".join(problems)) from None


def _suggested_key(model: type[BaseModel], error: Any) -> str | None:
    """For an unknown key, the known key it is probably a typo of."""
    if error["type"] != "extra_forbidden":
        return None
    known = _field_names_at(model, error["loc"][:-1])
    suggestion = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
    return suggestion[0] if suggestion else None


def _describe_error(model: type[BaseModel], error: Any, data: Any) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        known = _field_names_at(model, loc[:-1])
        suggestion = _suggested_key(model, error)
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        return f"unknown key{hint} (known keys: {', '.join(known) or 'none'})"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind not in ("value_error", "assertion_error") and "input" in error:
        message = f"{message} (got {error['input']!r})"
    return message


def _field_names_at(model: type[BaseModel], loc: typing.Sequence[str | int]) -> list[str]:
    """Names of the fields of the model found by walking ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            current = field.annotation if field else None
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Optional[X] → X; Annotated[X, ...] → X."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    return annotation
