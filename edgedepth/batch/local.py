"""The local pool: worker processes on this machine, each loading the model once and running
one input at a time (:func:`edgedepth.batch.job.run_input`). The parent hands each worker its
next input, so it always knows what a worker holds: a worker that dies (killed, out of memory)
is replaced and its input given to another (it fails when :data:`MAX_DEATHS` workers died
running it).

Ctrl-C or SIGTERM (in the parent): every worker's run stops as ``edgedepth run`` stops (the
sinks finalise), its input is reported interrupted, and the parent waits for them; a second
Ctrl-C ends the workers at once.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import multiprocessing
import signal
import threading
from collections import Counter, deque
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.synchronize import Event
from typing import Any

from edgedepth.batch.job import InputTask, Notify, OnResult, ProgressEvent, run_input
from edgedepth.batch.report import InputResult
from edgedepth.engine.run import FINALISE_SECONDS
from edgedepth.runtime.sessions import usable_cores

log = logging.getLogger("edgedepth")

#: Workers that may die running one input before it fails.
MAX_DEATHS = 3


def default_workers(backend_threads: int) -> int:
    """Worker processes for this machine: its cores ÷ the backend's threads, at least 1."""
    return max(1, usable_cores() // max(1, backend_threads))


class LocalPool:
    """``workers`` processes on this machine."""

    def __init__(self, workers: int, debug: bool = False) -> None:
        self.workers = workers
        self.debug = debug

    @property
    def description(self) -> str:
        return f"local pool of {self.workers} worker process{'es' if self.workers > 1 else ''}"

    def run(self, tasks: Sequence[InputTask], notify: Notify, done: OnResult) -> None:
        """Run every task; ``done`` is called with each result as it comes."""
        _PoolRun(self.workers, self.debug, tasks, notify, done).run()


class _PoolRun:
    """The state of one :meth:`LocalPool.run`: the workers, the inputs still to hand out, and
    how many workers died running each."""

    def __init__(
        self, size: int, debug: bool, tasks: Sequence[InputTask], notify: Notify, done: OnResult
    ) -> None:
        # spawn, on every system: a forked child would inherit the parent's threads' locks.
        self.context = multiprocessing.get_context("spawn")
        self.stop = self.context.Event()
        self.size, self.debug = size, debug
        self.queue = deque(tasks)
        self.remaining = len(tasks)
        self.deaths: Counter[str] = Counter()
        self.workers: list[_Worker] = []
        self.notify, self._done = notify, done

    def done(self, result: InputResult) -> None:
        self.remaining -= 1
        self._done(result)

    def start_worker(self) -> None:
        self.workers.append(_Worker(self.context, self.stop, self.debug))

    def run(self) -> None:
        try:
            for _ in range(min(self.size, len(self.queue))):
                self.start_worker()
            while self.remaining:
                for worker in self.workers:
                    if worker.task is None and self.queue:
                        worker.assign(self.queue.popleft())
                waiting = [w.connection for w in self.workers]
                ready = wait(waiting + [w.process.sentinel for w in self.workers])
                for worker in list(self.workers):
                    if worker.connection in ready or worker.process.sentinel in ready:
                        worker.receive(self.notify, self.done)
                    if not worker.process.is_alive() or worker.gone:
                        self.replace(worker)
        except KeyboardInterrupt:
            self.stop.set()
            self.collect_stopped()
            raise
        finally:
            for worker in self.workers:  # all told first: they end together
                worker.tell_to_end()
            for worker in self.workers:
                worker.end()

    def replace(self, worker: _Worker) -> None:
        """A worker ended: its input goes back to the queue (or fails, after
        :data:`MAX_DEATHS`), and another worker starts if there is work left."""
        worker.receive(self.notify, self.done)  # what it sent before it ended
        self.workers.remove(worker)
        worker.close()
        lost = worker.task
        if lost is not None:
            self.deaths[lost.name] += 1
            code = worker.process.exitcode
            if self.deaths[lost.name] < MAX_DEATHS:
                log.warning(
                    "warning: a worker died (exit code %s) running %s: retrying it",
                    code,
                    lost.input.path,
                )
                self.queue.appendleft(lost)
            else:
                self.done(_died(lost, code, self.deaths[lost.name]))
        if self.queue:
            self.start_worker()

    def collect_stopped(self) -> None:
        """After a stop: the results of the runs in progress (interrupted, finalised)."""
        busy = [worker for worker in self.workers if worker.task is not None]
        if busy:
            log.info("stopping %d running input(s); Ctrl-C again to end them at once", len(busy))
        try:
            for worker in busy:
                while (
                    worker.task is not None
                    and not worker.gone
                    and worker.connection.poll(FINALISE_SECONDS)
                ):
                    worker.receive(self.notify, self.done)
        except KeyboardInterrupt:
            for worker in self.workers:
                worker.process.kill()


def _died(task: InputTask, code: int | None, deaths: int) -> InputResult:
    return InputResult(
        str(task.input.path),
        task.name,
        state="failed",
        error=f"{deaths} worker processes died running it (the last with exit code {code})",
        attempts=deaths,
    )


class _Worker:
    """One worker process and the pipe to it (tasks out; progress and results back)."""

    def __init__(self, context: SpawnContext, stop: Event, debug: bool) -> None:
        self.connection, child = context.Pipe()
        self.process: SpawnProcess = context.Process(
            target=_serve, args=(child, stop, debug), name="edgedepth-batch-worker", daemon=True
        )
        self.process.start()
        child.close()
        self.task: InputTask | None = None
        #: Its end of the pipe is closed: it ended.
        self.gone = False

    def assign(self, task: InputTask) -> None:
        self.task = task
        self.connection.send(task)

    def receive(self, notify: Notify, done: OnResult) -> None:
        """Every message waiting: progress passed on, a result to ``done``."""
        try:
            while not self.gone and self.connection.poll():
                kind, payload = self.connection.recv()
                if kind == "progress":
                    notify(payload)
                else:
                    self.task = None
                    done(payload)
        except (EOFError, OSError):  # the worker ended
            self.gone = True

    def close(self) -> None:
        self.connection.close()
        self.process.join(1)

    def tell_to_end(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.send(None)

    def end(self) -> None:
        """Wait for the process to end (after :meth:`tell_to_end`); kill it if it does not."""
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.connection.close()


def _serve(connection: Connection, stop: Event, debug: bool) -> None:
    """A worker process: run the inputs it is sent until it is sent None."""
    _quiet_logging(debug)
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: Any) -> None:
        # Ctrl-C reaches the whole process group, and the parent also asks through ``stop``:
        # one stop is enough (a second would cut the sinks' finalising short).
        if not interrupted.is_set():
            interrupted.set()
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)

    def watch() -> None:
        stop.wait()
        _thread.interrupt_main()  # the run in progress stops as on Ctrl-C

    threading.Thread(target=watch, name="stop-watch", daemon=True).start()
    lock = threading.Lock()

    def send(message: tuple[str, Any]) -> None:
        with lock:
            connection.send(message)

    def tell(event: ProgressEvent) -> None:
        send(("progress", event))

    try:
        while not interrupted.is_set():
            task = connection.recv()
            if task is None:
                break
            send(("result", run_input(task, tell)))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass


def _quiet_logging(debug: bool) -> None:
    """A worker's warnings on stderr, as the parent's (its progress goes to the parent)."""
    logger = logging.getLogger("edgedepth")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("edgedepth: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
