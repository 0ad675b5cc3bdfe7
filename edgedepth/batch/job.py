"""One input of a batch, run on a worker (a process of the local pool, or a Dask worker).

The config's source is replaced by the input and its sinks write into a folder of this attempt's
own, ``DIR/.<name>.<host>-<pid>-<random>.partial/``, renamed to ``DIR/<name>/`` only when the run
ended cleanly: a folder of that name is always complete, however many workers died on the way,
and only one attempt's folder ever gets the name. A failed input's outputs so far are kept in
``DIR/.<name>.failed/``. The sinks themselves are not changed: each attempt's folder is new.

A worker process keeps its backend in :data:`BACKENDS` between inputs: the model is loaded once
per worker, with its sessions and export cache, not once per input.
"""

from __future__ import annotations

import glob
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgedepth.api.errors import ConfigError, EdgedepthError, write_error
from edgedepth.api.options import output_fields
from edgedepth.api.stages import SinkOutput
from edgedepth.batch.inputs import BatchInput
from edgedepth.batch.report import InputResult, OutputFile
from edgedepth.engine.config import LoadedConfig, PluginSection, load_config
from edgedepth.engine.pipeline import BackendPool, Pipeline
from edgedepth.engine.registry import Registry, load_registry
from edgedepth.engine.run import RunResult

log = logging.getLogger("edgedepth")

#: The backends of this worker process, lent to each input's run.
BACKENDS = BackendPool()

#: What a worker tells the batch while it runs an input: (name, what, count) with what one of
#: ``started`` (an attempt began), ``total`` (count: the input's frames, None if unknown) and
#: ``frames`` (count: frames finished since the last such event).
ProgressEvent = tuple[str, str, int | None]
Notify = Callable[[ProgressEvent], None]
#: Given each input's result as it comes (by an executor: the local pool, a Dask cluster).
OnResult = Callable[[InputResult], None]

#: Frames finished are told at most this often (a batch of millions of frames stays quiet).
NOTIFY_SECONDS = 0.5


@dataclass(frozen=True)
class InputTask:
    """What a worker needs to run one input: every path absolute, for workers on other
    machines that see the same shared folder."""

    config: Path
    overrides: tuple[str, ...]
    input: BatchInput
    #: Its folder in ``out``.
    name: str
    out: Path


def unfinished_attempts(out: Path, name: str) -> list[Path]:
    """The folders of the attempts at an input that have not finished (running, or left by a
    worker that died)."""
    return list(out.glob(f".{glob.escape(name)}.*.partial"))


def failed_folder(out: Path, name: str) -> Path:
    """Where a failed input's outputs so far are kept."""
    return out / f".{name}.failed"


def input_config(
    loaded: LoadedConfig, registry: Registry, item: BatchInput, folder: Path
) -> LoadedConfig:
    """The config for one input: its source replaced by the input (keeping the config's own
    source options when it names the same type, e.g. the ``images`` fps), the files and folders
    its sinks write taken relative to ``folder`` (made as needed), every frame processed (file
    mode, whatever the config says for a camera), no progress bar of its own.
    A sink path that is absolute or leaves ``folder`` is an error: every input would write it."""
    config = loaded.config
    own = config.source
    options = own.options if own is not None and own.type == item.source else {}
    source = PluginSection(type=item.source, **{**options, "path": str(item.path)})
    sinks = []
    for index, section in enumerate(config.sinks):
        where = f"{loaded.label}: sinks[{index}]"
        registration = registry.get("sinks", section.type, f"{where}.type")
        sink_options = section.options
        for key in output_fields(registration.options):
            value = sink_options.get(key)
            if value is None:
                continue
            relative = Path(str(value)).expanduser()
            if relative.anchor or ".." in relative.parts:
                raise ConfigError(
                    f"{where}.{key}: {value}: in a batch, sink paths are relative to each "
                    "input's own folder (OUT/<input>/): give a path inside it"
                )
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            sink_options[key] = str(target)
        sinks.append(PluginSection(type=section.type, **sink_options))
    runtime = config.runtime.model_copy(update={"mode": "file", "progress": False})
    update = {"source": source, "sinks": sinks, "runtime": runtime}
    return LoadedConfig(loaded.path, config.model_copy(update=update))


_configs: dict[tuple[object, ...], tuple[LoadedConfig, Registry]] = {}
_configs_lock = threading.Lock()


def load_with_plugins(config: Path, overrides: tuple[str, ...]) -> tuple[LoadedConfig, Registry]:
    """The config and the plugins it names, read once per process (again if the file
    changed)."""
    try:
        stat = config.stat()
    except OSError:
        raise EdgedepthError(
            f"{config}: config not found on {socket.gethostname()}: every worker must see the "
            "config at the same path (a shared folder)"
        ) from None
    key = (config, overrides, stat.st_mtime_ns, stat.st_size)
    with _configs_lock:
        if key not in _configs:
            loaded = load_config(config, overrides)
            registry = load_registry(
                loaded.config.plugins, loaded.base_dir, source=f"{loaded.label}: plugins"
            )
            _configs[key] = (loaded, registry)
        return _configs[key]


class _FrameCounter:
    """Frames finished, told in bunches (called from the run's threads)."""

    def __init__(self, name: str, notify: Notify) -> None:
        self.name, self.notify = name, notify
        self._lock = threading.Lock()
        self._pending = 0
        self._told_at = time.monotonic()

    def add(self) -> None:
        with self._lock:
            self._pending += 1
            if time.monotonic() - self._told_at >= NOTIFY_SECONDS:
                self._tell()

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._tell()

    def _tell(self) -> None:
        self.notify((self.name, "frames", self._pending))
        self._pending, self._told_at = 0, time.monotonic()


def run_input(task: InputTask, notify: Notify, worker: str | None = None) -> InputResult:
    """Run one input to its folder; never raises: what went wrong is the result's error line."""
    started = time.perf_counter()
    host = socket.gethostname()
    # The folders of earlier attempts that never finished stay until the batch ends.
    earlier = len(unfinished_attempts(task.out, task.name))
    result = InputResult(
        str(task.input.path),
        task.name,
        worker=worker or f"{host}:{os.getpid()}",
        attempts=1 + earlier,
    )
    notify((task.name, "started", None))
    attempt = task.out / f".{task.name}.{host}-{os.getpid()}-{secrets.token_hex(2)}.partial"
    run: RunResult | None = None
    try:
        if not task.out.is_dir():
            raise EdgedepthError(
                f"{task.out}: output folder not found on this worker ({host}): every worker "
                "must reach it at the same path (a shared folder)"
            )
        try:
            attempt.mkdir()
        except OSError as exc:
            raise write_error(attempt, exc) from None
        loaded, registry = load_with_plugins(task.config, task.overrides)
        config = input_config(loaded, registry, task.input, attempt)
        pipeline = Pipeline.from_config(config, registry, backends=BACKENDS)
        result.setup_seconds = round(time.perf_counter() - started, 3)
        result.backend_built = pipeline.backend_built
        notify((task.name, "total", pipeline.source.obj.info.frame_count))
        counter = _FrameCounter(task.name, notify)
        run = pipeline.run(on_frame=counter.add)
        counter.flush()
    except EdgedepthError as exc:
        result.state, result.error = "failed", str(exc)
    except KeyboardInterrupt:
        result.state = "interrupted"
    except Exception as exc:
        log.debug("input %s failed", task.input.path, exc_info=True)
        result.state, result.error = "failed", f"unexpected {type(exc).__name__}: {exc}"
    if run is not None:
        result.frames = run.stats.frames_out
        if run.error is not None:
            result.state, result.error = "failed", str(run.error)
        elif run.stopped_by in ("SIGINT", "SIGTERM"):
            result.state = "interrupted"
        else:
            result.state = "done"
    _put_in_place(task, attempt, result, run.outputs if run is not None else [])
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _put_in_place(
    task: InputTask, attempt: Path, result: InputResult, outputs: list[SinkOutput]
) -> None:
    """The attempt's folder becomes the input's (done), its failed folder (failed, when it
    holds anything), or goes (interrupted: the next run redoes the input)."""
    final = task.out / task.name
    failed = failed_folder(task.out, task.name)
    if result.state == "done":
        try:
            os.rename(attempt, final)
        except OSError as exc:
            if final.is_dir():  # another attempt at this input finished first: it counts
                log.info("%s: finished by another attempt first; this one is dropped", final)
                shutil.rmtree(attempt, ignore_errors=True)
            else:
                result.state = "failed"
                result.error = f"cannot rename {attempt} to {final}: {exc.strerror or exc}"
    if result.state == "done":
        shutil.rmtree(failed, ignore_errors=True)
        keep = final
    elif result.state == "failed" and any(path.is_file() for path in attempt.rglob("*")):
        shutil.rmtree(failed, ignore_errors=True)
        os.replace(attempt, failed)
        keep = failed
    else:
        shutil.rmtree(attempt, ignore_errors=True)
        return
    result.outputs = [_relocated(output, attempt, keep, task.out) for output in outputs]


def _relocated(output: SinkOutput, attempt: Path, folder: Path, out: Path) -> OutputFile:
    """A sink's output, by its path after the attempt's folder was renamed, relative to ``out``."""
    try:
        path = (folder / output.path.relative_to(attempt)).relative_to(out).as_posix()
    except ValueError:  # written outside the attempt's folder (a sink's default path)
        path = str(output.path)
    return OutputFile(path, output.frames, output.what)
