"""A batch from start to end: the config checked once, the inputs expanded and named, those
already finished skipped, the rest run by an executor (the local pool or a Dask cluster) with
bars over inputs and frames, and ``batch.json`` kept up to date."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from edgedepth.api.errors import EdgedepthError
from edgedepth.batch.cluster import DaskCluster
from edgedepth.batch.inputs import BatchInput, expand_inputs, output_names
from edgedepth.batch.job import (
    InputTask,
    Notify,
    OnResult,
    ProgressEvent,
    input_config,
    load_with_plugins,
    unfinished_attempts,
)
from edgedepth.batch.local import LocalPool, default_workers
from edgedepth.batch.report import (
    BatchReport,
    InputResult,
    config_fingerprint,
    listed_outputs,
    read_report,
)
from edgedepth.engine import progress
from edgedepth.engine.config import LoadedConfig
from edgedepth.engine.registry import PipelineSpec, Registry, resolve_config
from edgedepth.runtime.sessions import usable_cores

log = logging.getLogger("edgedepth")


class Executor(Protocol):
    """Where the inputs run: :class:`~edgedepth.batch.local.LocalPool`,
    :class:`~edgedepth.batch.cluster.DaskCluster`."""

    @property
    def description(self) -> str: ...

    def run(self, tasks: Sequence[InputTask], notify: Notify, done: OnResult) -> None:
        """Run every task (each input once, retried when its worker dies), calling ``notify``
        with progress and ``done`` with each result as it comes; on Ctrl-C or SIGTERM, stop and
        raise ``KeyboardInterrupt``."""
        ...


def backend_threads(spec: PipelineSpec) -> int:
    """Cores one worker's backend uses: its ``threads`` option (unset: one per usable core, as
    :func:`~edgedepth.runtime.sessions.cpu_session` does); 1 for a backend without one."""
    options = spec.backend.options
    if not hasattr(options, "threads"):
        return 1
    return options.threads or usable_cores()


class BatchProgress:
    """Bars over the inputs and their frames (when bars are on), and a line for each input that
    ends. Told by the workers' events, from any thread."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.ended = 0
        self.inputs = progress.bar("inputs", total, "input")
        self.frames = progress.bar("frames", None, "frame", position=1)
        self._lock = threading.Lock()
        #: Attempts started, and frames counted, by input name.
        self.attempts: Counter[str] = Counter()
        self._frames: Counter[str] = Counter()
        self._totals: dict[str, int] = {}

    def notify(self, event: ProgressEvent) -> None:
        name, kind, count = event
        with self._lock:
            if kind == "started":
                self.attempts[name] += 1
                # A retry starts over: the frames of the lost attempt no longer count.
                self.frames.update(-self._frames.pop(name, 0))
            elif kind == "total" and count and name not in self._totals:
                self._totals[name] = count
                self.frames.total = sum(self._totals.values())
                self.frames.refresh()
            elif kind == "frames" and count:
                self._frames[name] += count
                self.frames.update(count)

    def ended_input(self, result: InputResult) -> None:
        with self._lock:
            self.ended += 1
            self.inputs.update(1)
        where = f"[{self.ended}/{self.total}] {result.name}"
        if result.state == "done":
            log.info(
                "batch: %s: done, %s frames in %.1f s (%s)",
                where,
                result.frames,
                result.seconds or 0.0,
                result.worker,
            )
        elif result.state == "failed":
            log.warning("batch: %s: failed: %s", where, result.error)
        else:
            log.info("batch: %s: %s", where, result.state)

    def close(self) -> None:
        self.frames.close()
        self.inputs.close()


def check_batch_config(loaded: LoadedConfig, registry: Registry, item: BatchInput) -> PipelineSpec:
    """Every option of the config checked once, as one input's run would (the sink paths in a
    scratch folder): a mistake is one error, not one per input."""
    with tempfile.TemporaryDirectory(prefix="edgedepth-batch-check-") as scratch:
        return resolve_config(input_config(loaded, registry, item, Path(scratch)), registry)


def sweep_partials(out: Path, names: Sequence[str]) -> None:
    """Remove the temporary folders of attempts that never finished (a worker or a batch killed
    mid-input): they never count, and the inputs run again."""
    for name in names:
        for folder in unfinished_attempts(out, name):
            shutil.rmtree(folder, ignore_errors=True)


def plan(
    out: Path,
    config: Path,
    overrides: Sequence[str],
    arguments: Sequence[Path],
) -> tuple[BatchReport, list[BatchInput], dict[Path, str]]:
    """The report of this run with every input in it (skipped, pending, or failed because it
    cannot be used), the inputs to run, and each input's folder name."""
    inputs, problems = expand_inputs(arguments)
    previous = read_report(out)
    fingerprint = config_fingerprint(config, overrides)
    names = output_names([item.path for item in inputs], {p: e.name for p, e in previous.items()})
    report = BatchReport(out, config, overrides, fingerprint)
    to_run = []
    for item in inputs:
        name = names[item.path]
        folder = out / name
        if not folder.is_dir():
            to_run.append(item)
            report.add(InputResult(str(item.path), name))
            continue
        earlier = previous.get(item.path)
        if earlier is None or earlier.name != name or earlier.state not in ("done", "skipped"):
            earlier = InputResult(str(item.path), name, outputs=listed_outputs(folder, out))
        earlier.state = "skipped"
        report.add(earlier)
    for problem in problems:
        report.add(InputResult(str(problem.path), None, "failed", error=problem.error))
    skipped = [entry for entry in report.entries if entry.state == "skipped"]
    if skipped:
        log.info("batch: %d input(s) finished in an earlier run: skipped", len(skipped))
    other = [entry for entry in skipped if entry.config_fingerprint not in (None, fingerprint)]
    if other:
        log.warning(
            "warning: %d finished input(s) in %s were made with another config (or --set), "
            "e.g. %s: they are kept as they are; give another --out to run them with this one",
            len(other),
            out,
            other[0].name,
        )
    return report, to_run, names


class Batch:
    """One run of ``edgedepth batch``: made ready (the config checked, the inputs expanded and
    named, finished ones skipped, ``batch.json`` written) when built; :meth:`run` runs the
    rest (see ``edgedepth batch --help``)."""

    def __init__(
        self,
        config: Path,
        overrides: Sequence[str],
        out: Path,
        arguments: Sequence[Path],
        scheduler: str | None = None,
        workers: int | None = None,
        debug: bool = False,
    ) -> None:
        config, out = config.absolute(), out.expanduser().absolute()
        cluster = DaskCluster(scheduler) if scheduler is not None else None
        loaded, registry = load_with_plugins(config, tuple(overrides))
        if out.exists() and not out.is_dir():
            raise EdgedepthError(f"--out {out}: is a file; give a folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgedepthError(f"--out {out}: cannot create it: {exc.strerror or exc}") from None
        self.out = out
        self.report, to_run, names = plan(out, config, overrides, arguments)
        self.tasks = [
            InputTask(config, tuple(overrides), item, names[item.path], out) for item in to_run
        ]
        self.executor: Executor | None = None
        if self.tasks:
            spec = check_batch_config(loaded, registry, to_run[0])
            if cluster is not None:
                self.executor = cluster
            else:
                size = workers or default_workers(backend_threads(spec))
                self.executor = LocalPool(min(size, len(self.tasks)), debug)
            self.report.header["executor"] = self.executor.description
        self.report.write()

    def run(self) -> BatchReport:
        """Run every input not finished yet and return the report (also in ``batch.json``).
        Raises ``KeyboardInterrupt`` (the report written) when stopped by Ctrl-C or SIGTERM."""
        names = [task.name for task in self.tasks]
        sweep_partials(self.out, names)
        bars = BatchProgress(len(self.tasks))

        def done(result: InputResult) -> None:
            assert result.name is not None
            result.attempts = max(result.attempts, bars.attempts[result.name])
            result.config_fingerprint = self.report.header["config_fingerprint"]
            self.report.record(result)
            bars.ended_input(result)

        try:
            with progress.above_bars():
                if self.executor is not None:
                    self.executor.run(self.tasks, bars.notify, done)
        finally:
            bars.close()
            self.report.write(finished=True)
        sweep_partials(self.out, names)
        return self.report
