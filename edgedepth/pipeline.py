"""The streaming runtime: capture → preprocess → backend → postprocess → sinks, one thread per
stage (and per sink) with bounded queues between them, so stages overlap and throughput is that
of the slowest stage."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edgedepth.config import LoadedConfig, PluginSection, format_location, validate
from edgedepth.errors import EdgedepthError, PluginError
from edgedepth.frame import Frame
from edgedepth.queues import Closed, StageQueue
from edgedepth.registry import KINDS, Registration, Registry
from edgedepth.stages import BuildContext, RunMode, StopPipeline
from edgedepth.stats import RunStats

log = logging.getLogger("edgedepth")

#: After Ctrl-C / SIGTERM / an error, how long sinks get to write what they hold and finalise.
FINALISE_SECONDS = 30.0


def default_cache_dir() -> Path:
    return Path(os.environ.get("EDGEDEPTH_CACHE", Path.home() / ".cache" / "edgedepth"))


@dataclass
class Stage:
    """A built plugin object with what is needed to name it in messages and timings."""

    registration: Registration
    obj: Any

    @property
    def label(self) -> str:
        return f"{KINDS[self.registration.kind][1]} {self.registration.name!r}"

    @property
    def describe(self) -> str:
        return f"{self.label} (plugin {self.registration.plugin})"

    def close(self) -> None:
        close = getattr(self.obj, "close", None)
        if callable(close):
            close()


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

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return 1
        return {"SIGINT": 130, "SIGTERM": 143}.get(self.stopped_by or "", 0)


@dataclass
class Pipeline:
    source: Stage
    resize: Stage
    backend: Stage
    postprocessors: list[Stage]
    sinks: list[Stage]
    mode: RunMode
    queue_size: int = 4
    restore_size: bool = True
    max_frames: int | None = None
    progress: bool | None = None
    stats: RunStats = field(default_factory=RunStats)

    # --- assembly -----------------------------------------------------------------------------

    @classmethod
    def from_config(cls, loaded: LoadedConfig, registry: Registry) -> Pipeline:
        """Validate every plugin's options, then build the stages in order (source first: its
        frame size decides the backend's input size). Closes what was built if a later one fails."""
        config = loaded.config
        options = validate_plugin_options(loaded, registry)
        runtime = config.runtime
        context = BuildContext(
            config_path=loaded.path,
            mode="file",
            cache_dir=runtime.cache_dir or default_cache_dir(),
        )
        built: list[Stage] = []

        def build(key: str, registration: Registration, opts: Any) -> Stage:
            try:
                obj = registration.factory(opts, context)
            except EdgedepthError as exc:
                raise type(exc)(f"{loaded.label}: {key}: {exc}") from exc
            except Exception as exc:
                raise PluginError(
                    f"{loaded.label}: {key}: {KINDS[registration.kind][1]} "
                    f"{registration.name!r} (plugin {registration.plugin}) failed to start: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            stage = Stage(registration, obj)
            built.append(stage)
            return stage

        try:
            source = build("source", *options["source"])
            info = source.obj.info
            context.source = info
            context.mode = (
                ("live" if info.live else "file") if runtime.mode == "auto" else runtime.mode
            )
            resize = build("preprocess.resize", *options["resize"])
            context.input_size = tuple(resize.obj.input_size(info.height, info.width))
            backend = build("backend", *options["backend"])
            postprocessors = [
                build(f"postprocess[{i}]", *item) for i, item in enumerate(options["postprocess"])
            ]
            sinks = [build(f"sinks[{i}]", *item) for i, item in enumerate(options["sinks"])]
        except BaseException:
            for stage in reversed(built):
                _close_quietly(stage)
            raise
        log.info(
            "pipeline: %s %dx%d (%s mode) → %s %d×%d (first frame) → %s",
            source.registration.name,
            info.width,
            info.height,
            context.mode,
            resize.registration.name,
            *context.input_size,
            backend.registration.name,
        )
        return cls(
            source=source,
            resize=resize,
            backend=backend,
            postprocessors=postprocessors,
            sinks=sinks,
            mode=context.mode,
            queue_size=runtime.queue_size,
            restore_size=config.preprocess.restore_size,
            max_frames=runtime.max_frames,
            progress=runtime.progress,
        )

    # --- running ------------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Stream until the source ends, a stage fails or asks to stop, or Ctrl-C / SIGTERM
        (raised as ``KeyboardInterrupt`` in the calling thread). Sinks are always finalised."""
        self._error: StageFailed | None = None
        self._stopped_by: str | None = None
        self._state_lock = threading.Lock()
        self._pending_sinks: dict[int, int] = {}
        live = self.mode == "live"
        policy = "latest" if live else "block"
        capacity = 1 if live else self.queue_size

        def on_sink_drop(frame: Frame) -> None:
            self._sink_finished(frame)

        self._to_preprocess: StageQueue[Frame] = StageQueue("capture→preprocess", capacity, policy)
        self._to_backend: StageQueue[Frame] = StageQueue("preprocess→backend", capacity, policy)
        self._to_postprocess: StageQueue[Frame] = StageQueue(
            "backend→postprocess", capacity, policy
        )
        self._to_sinks = [
            StageQueue(f"→sink {s.registration.name}", capacity, policy, on_drop=on_sink_drop)
            for s in self.sinks
        ]
        self._upstream = [self._to_preprocess, self._to_backend, self._to_postprocess]
        total = self.source.obj.info.frame_count
        if self.max_frames is not None:
            total = min(total, self.max_frames) if total else self.max_frames
        show_progress = self.progress if self.progress is not None else sys.stderr.isatty()
        self._progress = tqdm(
            total=total,
            unit="frame",
            disable=not show_progress or live,
            file=sys.stderr,
            leave=False,
        )
        workers = [
            threading.Thread(target=self._capture, name="capture", daemon=True),
            threading.Thread(
                target=self._work,
                args=(self._to_preprocess, [self._to_backend], self._preprocess),
                name="preprocess",
                daemon=True,
            ),
            threading.Thread(
                target=self._work,
                args=(self._to_backend, [self._to_postprocess], self._infer),
                name="backend",
                daemon=True,
            ),
            threading.Thread(
                target=self._work,
                args=(self._to_postprocess, self._to_sinks, self._postprocess),
                name="postprocess",
                daemon=True,
            ),
        ]
        sink_threads = [
            threading.Thread(target=self._sink, args=(sink, queue), name=f"sink-{i}", daemon=True)
            for i, (sink, queue) in enumerate(zip(self.sinks, self._to_sinks, strict=True))
        ]
        for thread in workers + sink_threads:
            thread.start()
        try:
            for thread in workers + sink_threads:
                while thread.is_alive():
                    thread.join(0.1)
        except KeyboardInterrupt as interrupt:
            self._stop(getattr(interrupt, "signal_name", "SIGINT"))
            self._finalise(workers, sink_threads)
        finally:
            self._progress.close()
            for stage in [self.backend, *self.postprocessors]:
                self._close_stage(stage)
        self.stats.dropped_by_queue = {
            q.name: q.dropped for q in [*self._upstream, *self._to_sinks] if q.dropped
        }
        return RunResult(self.stats, self._error, self._stopped_by)

    def _finalise(
        self, workers: list[threading.Thread], sink_threads: list[threading.Thread]
    ) -> None:
        deadline = time.monotonic() + FINALISE_SECONDS
        for thread in sink_threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.error(
                    "sink thread %s did not finish within %.0f s", thread.name, FINALISE_SECONDS
                )
        # Upstream stages may be inside a long backend call; they are daemons and hold no files.
        for thread in workers:
            thread.join(0.5)

    def _stop(self, reason: str, failed: Stage | None = None) -> None:
        """End the run: upstream work is discarded, sinks write what they already hold and
        finalise. When a stage ``failed``, frames that had already passed it go on to the sinks
        (the failing stage's thread closes its outboxes, so they drain and end)."""
        with self._state_lock:
            if self._stopped_by is None and self._error is None:
                self._stopped_by = reason
        order = [self.source, self.resize, self.backend, *self.postprocessors]
        position = next((i for i, stage in enumerate(order) if stage is failed), None)
        if position is None:  # a signal, a stop request or a failing sink
            position = len(order)
            for queue in self._to_sinks:
                queue.close()
        # Upstream queue i holds frames that passed order[i]; those past the failure go on.
        for queue in self._upstream[:position]:
            queue.abort()

    def _fail(self, failure: StageFailed) -> None:
        with self._state_lock:
            if self._error is None and self._stopped_by is None:
                self._error = failure
                log.debug("stage failed", exc_info=failure.cause)
        self._stop("error", failure.stage)

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

    def _capture(self) -> None:
        source = self.source
        pace = self.mode == "live" and not source.obj.info.live
        clock_start: float | None = None
        media_start = 0.0
        frames = iter(source.obj.frames())
        count = 0
        try:
            while self.max_frames is None or count < self.max_frames:
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
                if pace:  # a file played as a live source: release frames at their media time
                    if clock_start is None:
                        clock_start, media_start = time.perf_counter(), frame.timestamp
                    delay = clock_start + (frame.timestamp - media_start) - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    frame.captured_at = time.perf_counter()
                count += 1
                self.stats.frame_captured()
                self._to_preprocess.put(frame)
        except Closed:
            pass
        except StopPipeline:
            self._stop("stop")
        except StageFailed as failure:
            self._fail(failure)
        finally:
            self._to_preprocess.close()
            self._close_stage(source)

    def _work(
        self,
        inbox: StageQueue[Frame],
        outboxes: list[StageQueue[Frame]],
        step: Callable[[Frame], Frame],
    ) -> None:
        try:
            while True:
                frame = step(inbox.get())
                if not outboxes:
                    self.stats.frame_done(frame.captured_at)
                    self._progress.update(1)
                    continue
                with self._state_lock:
                    self._pending_sinks[frame.index] = len(outboxes)
                for queue in outboxes:
                    queue.put(frame)
        except Closed:
            pass
        except StopPipeline:
            self._stop("stop")
        except StageFailed as failure:
            self._fail(failure)
        finally:
            for queue in outboxes:
                queue.close()

    def _preprocess(self, frame: Frame) -> Frame:
        resized, state = self._call(
            self.resize,
            f"resize:{self.resize.registration.name}",
            frame,
            self.resize.obj.apply,
            frame.image,
        )
        frame.model_input = resized
        frame.extras["resize_state"] = state
        return frame

    def _infer(self, frame: Frame) -> Frame:
        depth = self._call(
            self.backend, "backend:infer", frame, self.backend.obj.infer, frame.model_input
        )
        depth = np.asarray(depth)
        if depth.ndim > 2:
            depth = (
                depth.reshape(depth.shape[-2:])
                if depth.size == np.prod(depth.shape[-2:])
                else depth
            )
        if depth.ndim != 2:
            raise StageFailed(
                self.backend,
                ValueError(f"returned depth of shape {depth.shape}, expected H×W"),
                frame.index,
            )
        frame.depth = depth.astype(np.float32, copy=False)
        frame.depth_kind = self.backend.obj.depth_kind
        return frame

    def _postprocess(self, frame: Frame) -> Frame:
        assert frame.depth is not None
        if self.restore_size and frame.depth.shape != (frame.height, frame.width):
            frame.depth = self._call(
                self.resize,
                "restore",
                frame,
                self.resize.obj.restore,
                frame.depth,
                (frame.height, frame.width),
                frame.extras.get("resize_state"),
            )
        for stage in self.postprocessors:
            frame = self._call(
                stage, f"post:{stage.registration.name}", frame, stage.obj.process, frame
            )
        return frame

    def _sink(self, sink: Stage, inbox: StageQueue[Frame]) -> None:
        try:
            while True:
                frame = inbox.get()
                self._call(sink, f"sink:{sink.registration.name}", frame, sink.obj.write, frame)
                self._sink_finished(frame)
        except Closed:
            pass
        except StopPipeline:
            self._stop("stop")
        except StageFailed as failure:
            self._fail(failure)
        finally:
            try:
                sink.close()
            except Exception as exc:  # a sink that cannot finalise its file must be reported
                self._fail(StageFailed(sink, exc, None))

    def _sink_finished(self, frame: Frame) -> None:
        with self._state_lock:
            remaining = self._pending_sinks.get(frame.index, 1) - 1
            if remaining > 0:
                self._pending_sinks[frame.index] = remaining
                return
            self._pending_sinks.pop(frame.index, None)
        self.stats.frame_done(frame.captured_at)
        self._progress.update(1)

    def _close_stage(self, stage: Stage) -> None:
        try:
            stage.close()
        except Exception as exc:
            self._fail(StageFailed(stage, exc, None))


def _close_quietly(stage: Stage) -> None:
    try:
        stage.close()
    except Exception:
        log.debug("closing %s after a failed start", stage.describe, exc_info=True)


def validate_plugin_options(loaded: LoadedConfig, registry: Registry) -> dict[str, Any]:
    """Look up every named plugin and validate its options (what ``edgedepth check`` does).
    Returns (registration, options) pairs by section."""
    config = loaded.config

    def resolve(kind: str, name: str, options: dict[str, Any], loc: tuple[str | int, ...]):
        key = "policy" if kind == "resize" else "type"
        where = f"{loaded.label}: {format_location([*loc, key])}"
        registration = registry.get(kind, name, where)
        opts = validate(registration.options, options, loaded.label, loc, base_dir=loaded.base_dir)
        return registration, opts

    def section(kind: str, item: PluginSection, loc: tuple[str | int, ...]):
        return resolve(kind, item.type, item.options, loc)

    resize = config.preprocess.resize
    return {
        "source": section("sources", config.source, ("source",)),
        "resize": resolve("resize", resize.policy, resize.options, ("preprocess", "resize")),
        "backend": section("backends", config.backend, ("backend",)),
        "postprocess": [
            section("postprocessors", item, ("postprocess", i))
            for i, item in enumerate(config.postprocess)
        ],
        "sinks": [section("sinks", item, ("sinks", i)) for i, item in enumerate(config.sinks)],
    }
