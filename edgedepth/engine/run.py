"""One run of a pipeline: a thread per stage (and one per sink) with bounded queues between them,
so stages overlap and throughput is that of the slowest stage; one failure guard; the run's
statistics.

How a run ends, and what is kept:

- **end of stream**: every queue drains in order, every sink finalises; exit 0.
- **source error** on frame N: like the end of the stream — every frame captured before N is
  processed and recorded — then exit 1 with the error.
- **error in preprocess, backend or postprocess** on frame N: the queues upstream of the failed
  stage are discarded, the frames already past it drain to the sinks; exit 1.
- **sink error**: that sink's queue and every upstream queue are discarded, the other sinks
  write what they hold and finalise; exit 1.
- **stop** (Ctrl-C, SIGTERM, a stage raising :class:`~edgedepth.api.stages.StopPipeline`): upstream
  queues are discarded, sinks write what they hold and finalise; exit 130/143/0.

On every way but the end of stream, ``context.stop_requested`` is set (waits in plugins return)
and ``cancel()`` is called on the stages before the sinks, so a long call (an inference on the
HTP emulator) does not hold the run.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgedepth.api.errors import EdgedepthError
from edgedepth.api.frame import DepthKind, Frame
from edgedepth.api.stages import SinkOutput, StopPipeline
from edgedepth.engine.progress import enabled as progress_enabled
from edgedepth.engine.queues import Closed, StageQueue
from edgedepth.engine.stats import RunStats

if TYPE_CHECKING:
    from edgedepth.api.stages import BuildContext
    from edgedepth.engine.config import RuntimeConfig

log = logging.getLogger("edgedepth")

#: After a stop or an error, how long sinks get to write what they hold and finalise.
FINALISE_SECONDS = 30.0
#: After a stop or an error, how long a stage still inside a plugin call gets (after ``cancel``).
CANCEL_GRACE_SECONDS = 2.0
#: After Ctrl-C, sinks still busy this long are named (and how to stop waiting for them).
SAY_WAITING_SECONDS = 1.0

# Positions of the threads in the stream, for deciding what a failure discards.
CAPTURE, PREPROCESS, BACKEND, POSTPROCESS, SINK = range(5)


@dataclass
class Stage:
    """A built plugin object and what names it in messages and timings."""

    #: Singular label of its kind: ``source``, ``resize policy``, ``backend``, ``sink``, …
    kind: str
    name: str
    plugin: str
    obj: Any
    #: Lent to the run by a :class:`~edgedepth.engine.pipeline.BackendPool`: the run leaves it
    #: open for the next one.
    lent: bool = False

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}"

    @property
    def describe(self) -> str:
        return f"{self.label} (plugin {self.plugin})"

    def call_optional(self, method: str) -> None:
        """Call ``obj.method()`` if the plugin defines it (``close``, ``cancel``)."""
        function = getattr(self.obj, method, None)
        if callable(function):
            function()

    def close(self) -> None:
        self.call_optional("close")

    def close_quietly(self) -> None:
        """Close after a failed start, when the first error is the one to report."""
        try:
            self.close()
        except Exception:
            log.debug("closing %s after a failed start", self.describe, exc_info=True)


class Streamable(Protocol):
    """What a run needs of a pipeline (:class:`edgedepth.engine.pipeline.Pipeline` is one)."""

    @property
    def context(self) -> BuildContext: ...
    @property
    def source(self) -> Stage: ...
    @property
    def resize(self) -> Stage: ...

    backend: Stage
    postprocessors: list[Stage]
    sinks: list[Stage]
    runtime: RuntimeConfig
    restore_size: bool


def running(thread: threading.Thread) -> bool:
    """Whether ``thread`` still runs. After a ``join`` cut short by Ctrl-C, ``is_alive()`` may
    say False of a thread that runs on (CPython's join lock), so the interpreter is asked."""
    return thread.ident is not None and thread.ident in sys._current_frames()


def has_valid_depth(depth: np.ndarray, kind: DepthKind | None) -> bool:
    """Whether a depth map holds any value (finite; metric depth also > 0), in one pass over
    it for every map but those holding infinities."""
    metric = kind is DepthKind.METRIC_METERS
    peak = float(np.fmax.reduce(depth, axis=None))  # NaN only when every value is NaN
    if np.isfinite(peak):
        return peak > 0 or not metric
    if np.isnan(peak):
        return False
    finite = np.isfinite(depth)
    return bool(np.any(finite & (depth > 0)) if metric else finite.any())


class StageFailed(EdgedepthError):
    """A plugin raised while the pipeline was running."""

    def __init__(self, stage: Stage, cause: BaseException, frame_index: int | None) -> None:
        where = f" on frame {frame_index}" if frame_index is not None else ""
        detail = (
            str(cause) if isinstance(cause, EdgedepthError) else f"{type(cause).__name__}: {cause}"
        )
        super().__init__(f"{stage.describe} failed{where}: {detail}")
        self.stage = stage
        self.cause = cause


@dataclass
class RunResult:
    stats: RunStats
    error: StageFailed | None = None
    #: "SIGINT" / "SIGTERM" when interrupted, "stop" when a stage asked to end the run.
    stopped_by: str | None = None
    #: Stage threads still inside a call that could not be cancelled (e.g. a QNN graph, which
    #: runs as one native call, or a sink's close() that outlasted the wait), each as
    #: ``stage (at file:line in function)``: the process must exit without waiting for them.
    unfinished: list[str] = field(default_factory=list)
    #: What the sinks wrote (files and folders), for the summary.
    outputs: list[SinkOutput] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return 1
        return {"SIGINT": 130, "SIGTERM": 143}.get(self.stopped_by or "", 0)


class PipelineRun:
    """The threads, queues and state of one :meth:`Pipeline.run`."""

    def __init__(self, pipeline: Streamable, on_frame: Callable[[], None] | None = None) -> None:
        self.pipeline = pipeline
        #: Called (from a stage's thread) each time a frame is finished by every sink.
        self.on_frame = on_frame
        self.context = pipeline.context
        self.stats = RunStats()
        self.error: StageFailed | None = None
        self.stopped_by: str | None = None
        #: thread name → the stage it runs (for saying what a thread that does not end is doing)
        self._stage_of: dict[str, Stage] = {}
        #: Frames whose depth had no valid value (all NaN, or no positive metres).
        self.frames_without_depth = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        #: frame index → sinks that have not finished it yet
        self._pending_sinks: dict[int, int] = {}
        live = self.context.mode == "live"

        def queue(name: str, on_drop: Callable[[Frame], None] | None = None) -> StageQueue[Frame]:
            if live:
                return StageQueue(name, 1, "latest", on_drop)
            limit = round(pipeline.runtime.queue_mb * 1e6)
            return StageQueue(
                name, pipeline.runtime.queue_size, "block", on_drop, limit, lambda f: f.nbytes
            )

        self.to_preprocess = queue("capture→preprocess")
        self.to_backend = queue("preprocess→backend")
        self.to_postprocess = queue("backend→postprocess")
        self.to_sinks = [
            queue(f"→sink {sink.name}", self._frame_finished) for sink in pipeline.sinks
        ]
        #: The queue into each position: discarded up to the failed one.
        self.upstream = [self.to_preprocess, self.to_backend, self.to_postprocess]
        runtime = pipeline.runtime
        total = pipeline.source.obj.info.frame_count
        if runtime.max_frames is not None:
            total = min(total, runtime.max_frames) if total else runtime.max_frames
        show = runtime.progress if runtime.progress is not None else progress_enabled()
        from tqdm import tqdm

        self.progress = tqdm(
            total=total, unit="frame", disable=not show or live, file=sys.stderr, leave=False
        )

    # --- the run ----------------------------------------------------------------------------------

    def run(self) -> RunResult:
        p = self.pipeline
        workers = [
            self._thread("capture", CAPTURE, self._capture, [self.to_preprocess], p.source),
            self._worker("preprocess", PREPROCESS, self.to_preprocess, self._preprocess),
            self._worker("backend", BACKEND, self.to_backend, self._infer),
            self._worker("postprocess", POSTPROCESS, self.to_postprocess, self._postprocess),
        ]
        sink_threads = [
            self._thread(f"sink-{i}", SINK, self._sink_loop(sink, queue), [], sink, queue)
            for i, (sink, queue) in enumerate(zip(p.sinks, self.to_sinks, strict=True))
        ]
        unfinished: list[str] = []
        try:
            try:
                for thread in workers + sink_threads:
                    thread.start()
                self._wait_until_done_or_stopping(workers + sink_threads)
            except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM raised as one
                self.stop(getattr(interrupt, "signal_name", "SIGINT"))
            try:
                unfinished = self._finish(
                    [t for t in workers if t.ident], [t for t in sink_threads if t.ident]
                )
            except KeyboardInterrupt:
                log.warning("interrupted again: not waiting any longer for the sinks")
                unfinished = [self._doing(t) for t in workers + sink_threads if running(t)]
        finally:
            self.progress.close()
            busy = {t.name for t in workers if t.is_alive()}
            # Closing a stage while a thread is still inside it would free what it uses (the
            # resize policy is also called by postprocess, to restore the output's size).
            users = [(p.resize, {"preprocess", "postprocess"}), (p.backend, {"backend"})]
            users += [(stage, {"postprocess"}) for stage in p.postprocessors]
            for stage, thread_names in users:
                if not thread_names & busy and not stage.lent:
                    self._close(stage)
        self.stats.dropped_by_queue = {
            q.name: q.dropped for q in [*self.upstream, *self.to_sinks] if q.dropped
        }
        if self.frames_without_depth > 1:
            log.warning(
                "warning: %s returned no valid depth for %d frames",
                p.backend.describe,
                self.frames_without_depth,
            )
        return RunResult(self.stats, self.error, self.stopped_by, unfinished, self._outputs())

    def _outputs(self) -> list[SinkOutput]:
        outputs: list[SinkOutput] = []
        for sink in self.pipeline.sinks:
            describe = getattr(sink.obj, "outputs", None)
            if callable(describe):
                try:
                    outputs += describe()
                except Exception:
                    log.debug("outputs() of %s failed", sink.describe, exc_info=True)
        return outputs

    def _wait_until_done_or_stopping(self, threads: list[threading.Thread]) -> None:
        for thread in threads:
            while thread.is_alive() and not self._stopping.is_set():
                thread.join(0.1)

    def _finish(
        self, workers: list[threading.Thread], sink_threads: list[threading.Thread]
    ) -> list[str]:
        """Sinks get :data:`FINALISE_SECONDS` to write what they hold; a stage still inside a
        plugin call is cancelled and given :data:`CANCEL_GRACE_SECONDS`. Returns the threads
        that are still running."""
        deadline = time.monotonic() + FINALISE_SECONDS
        said = False
        for thread in sink_threads:
            thread.join(
                max(0.0, min(deadline, time.monotonic() + SAY_WAITING_SECONDS) - time.monotonic())
            )
            if thread.is_alive() and not said and self.stopped_by in ("SIGINT", "SIGTERM"):
                busy = [t for t in sink_threads if t.is_alive()]
                log.info(
                    "waiting up to %.0f s for %s to finish (Ctrl-C again to stop waiting)",
                    FINALISE_SECONDS,
                    ", ".join(self._doing(t) for t in busy),
                )
                said = True
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.error("%s did not finish within %.0f s", self._doing(thread), FINALISE_SECONDS)
        if any(thread.is_alive() for thread in workers):
            self._cancel_upstream()
            deadline = time.monotonic() + CANCEL_GRACE_SECONDS
            for thread in workers:
                thread.join(max(0.0, deadline - time.monotonic()))
        unfinished = [thread for thread in [*workers, *sink_threads] if thread.is_alive()]
        for thread in unfinished:
            log.info(
                "%s is still running after a stop that could not cancel it", self._doing(thread)
            )
        return [self._doing(thread) for thread in unfinished]

    def _doing(self, thread: threading.Thread) -> str:
        """``sink 'slow' (at slow.py:12 in close)``: a thread's stage and where it is now."""
        stage = self._stage_of.get(thread.name)
        frame = sys._current_frames().get(thread.ident or -1)
        name = stage.label if stage is not None else thread.name
        if frame is None:
            return name
        where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} in {frame.f_code.co_name}"
        return f"{name} (at {where})"

    # --- stopping and failing ---------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """End the run: upstream work is discarded, sinks write what they hold and finalise."""
        with self._lock:
            if self.stopped_by is None and self.error is None:
                self.stopped_by = reason
        self._discard_upstream(POSTPROCESS + 1)
        for queue in self.to_sinks:
            queue.close()

    def fail(self, failure: StageFailed, position: int, inbox: StageQueue[Frame] | None) -> None:
        """Record the first failure and discard what can no longer be finished (see the module
        docstring); the failed thread closes its own outboxes, so later stages drain."""
        with self._lock:
            if self.error is None and self.stopped_by is None:
                self.error = failure
                log.debug("stage failed", exc_info=failure.cause)
        if position == CAPTURE:
            return  # an end of stream: what was captured is processed and recorded
        if position == SINK:
            assert inbox is not None
            inbox.abort()
            self.stop("error")
            return
        self._discard_upstream(position)

    def _discard_upstream(self, position: int) -> None:
        self._stopping.set()
        self.context.stop_requested.set()
        for queue in self.upstream[:position]:
            queue.abort()
        self._cancel_upstream()

    def _cancel_upstream(self) -> None:
        p = self.pipeline
        for stage in [p.source, p.resize, p.backend, *p.postprocessors]:
            try:
                stage.call_optional("cancel")
            except Exception:
                log.debug("cancel() of %s failed", stage.describe, exc_info=True)

    # --- threads ----------------------------------------------------------------------------------

    def _thread(
        self,
        name: str,
        position: int,
        body: Callable[[], None],
        outboxes: list[StageQueue[Frame]],
        stage: Stage | None = None,
        inbox: StageQueue[Frame] | None = None,
    ) -> threading.Thread:
        """A daemon thread running ``body`` under the one failure guard: end of stream and stop
        requests end it quietly, a failure is recorded; its outboxes are closed on the way out
        (so later stages drain) and its stage, if it owns one, is closed."""
        if stage is not None:
            self._stage_of[name] = stage

        def guarded() -> None:
            try:
                body()
            except Closed:
                pass
            except StopPipeline:
                if position == CAPTURE:  # a source that ends itself: an end of stream
                    with self._lock:
                        self.stopped_by = self.stopped_by or "stop"
                else:
                    self.stop("stop")
            except StageFailed as failure:
                self.fail(failure, position, inbox)
            finally:
                for queue in outboxes:
                    queue.close()
                if stage is not None:
                    self._close(stage, position, inbox)

        return threading.Thread(target=guarded, name=name, daemon=True)

    def _worker(
        self, name: str, position: int, inbox: StageQueue[Frame], step: Callable[[Frame], Frame]
    ) -> threading.Thread:
        outboxes = self.to_sinks if position == POSTPROCESS else [self.upstream[position]]

        def loop() -> None:
            while True:
                frame = step(inbox.get())
                if not outboxes:
                    self._frame_finished(frame)
                    continue
                with self._lock:
                    self._pending_sinks[frame.index] = len(outboxes)
                for queue in outboxes:
                    queue.put(frame)

        return self._thread(name, position, loop, outboxes)

    def _sink_loop(self, sink: Stage, inbox: StageQueue[Frame]) -> Callable[[], None]:
        def loop() -> None:
            while True:
                frame = inbox.get()
                self._call(sink, f"sink:{sink.name}", frame, sink.obj.write, frame)
                self._frame_finished(frame)

        return loop

    def _close(
        self, stage: Stage, position: int = BACKEND, inbox: StageQueue[Frame] | None = None
    ) -> None:
        try:
            stage.close()
        except Exception as exc:  # e.g. a sink that cannot finalise its file: report it
            self.fail(StageFailed(stage, exc, None), position, inbox)

    def _call(
        self, stage: Stage, timing_name: str, frame: Frame, method: Callable[..., Any], *args: Any
    ) -> Any:
        """Call a plugin method, timed; its exceptions become a :class:`StageFailed` naming it."""
        start = time.perf_counter()
        try:
            result = method(*args)
        except (StopPipeline, Closed):
            raise
        except Exception as exc:
            raise StageFailed(stage, exc, frame.index) from exc
        self.stats.record(timing_name, time.perf_counter() - start)
        return result

    def _frame_finished(self, frame: Frame) -> None:
        """A sink is done with ``frame`` (written, or dropped as stale in live mode)."""
        with self._lock:
            remaining = self._pending_sinks.get(frame.index, 1) - 1
            if remaining > 0:
                self._pending_sinks[frame.index] = remaining
                return
            self._pending_sinks.pop(frame.index, None)
        self.stats.frame_done(frame.captured_at)
        self.progress.update(1)
        if self.on_frame is not None:
            self.on_frame()

    # --- the stages' work -------------------------------------------------------------------------

    def _capture(self) -> None:
        source = self.pipeline.source
        max_frames = self.pipeline.runtime.max_frames
        # A file played as a live source: release frames at their media time, like a camera.
        pace = self.context.mode == "live" and not source.obj.info.live
        clock_start: float | None = None
        media_start = 0.0
        frames = iter(source.obj.frames())
        count = 0
        while max_frames is None or count < max_frames:
            start = time.perf_counter()
            try:
                frame = next(frames)
            except StopIteration:
                break
            except (StopPipeline, Closed):
                raise
            except Exception as exc:
                raise StageFailed(source, exc, count) from exc
            self.stats.record("capture", time.perf_counter() - start)
            if pace:
                if clock_start is None:
                    clock_start, media_start = time.perf_counter(), frame.timestamp
                delay = clock_start + (frame.timestamp - media_start) - time.perf_counter()
                if delay > 0 and self.context.stop_requested.wait(delay):
                    break
                frame.captured_at = time.perf_counter()
            count += 1
            self.stats.frame_captured()
            self.to_preprocess.put(frame)

    def _preprocess(self, frame: Frame) -> Frame:
        resize = self.pipeline.resize
        resized, state = self._call(
            resize, f"resize:{resize.name}", frame, resize.obj.apply, frame.image
        )
        frame.model_input = resized
        frame.resize_state = state
        return frame

    def _infer(self, frame: Frame) -> Frame:
        backend = self.pipeline.backend
        depth = np.asarray(
            self._call(backend, "backend:infer", frame, backend.obj.infer, frame.model_input)
        )
        if depth.ndim > 2 and depth.size == np.prod(depth.shape[-2:]):
            depth = depth.reshape(depth.shape[-2:])
        if depth.ndim != 2:
            raise StageFailed(
                backend,
                ValueError(f"returned depth of shape {depth.shape}, expected H×W"),
                frame.index,
            )
        frame.depth = depth.astype(np.float32, copy=False)
        frame.depth_kind = backend.obj.depth_kind
        frame.model_input = None  # the largest array a frame carries: not kept in later queues
        if not has_valid_depth(frame.depth, frame.depth_kind):
            self.frames_without_depth += 1
            if self.frames_without_depth == 1:
                metric = frame.depth_kind is DepthKind.METRIC_METERS
                log.warning(
                    "warning: %s returned no valid depth for frame %d (every value NaN%s): is "
                    "the model or its output read right?",
                    backend.describe,
                    frame.index,
                    ", infinite or ≤ 0 m" if metric else " or infinite",
                )
        return frame

    def _postprocess(self, frame: Frame) -> Frame:
        assert frame.depth is not None
        p = self.pipeline
        if p.restore_size and frame.depth.shape != (frame.height, frame.width):
            frame.depth = self._call(
                p.resize,
                "restore",
                frame,
                p.resize.obj.restore,
                frame.depth,
                (frame.height, frame.width),
                frame.resize_state,
            )
        for stage in p.postprocessors:
            frame = self._call(stage, f"post:{stage.name}", frame, stage.obj.process, frame)
        return frame
