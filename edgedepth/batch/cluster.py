"""A Dask distributed cluster as the batch's workers: the user starts ``dask scheduler`` and a
``dask worker`` on every machine; ``edgedepth batch --scheduler tcp://HOST:PORT`` submits one task
per input (:func:`edgedepth.batch.job.run_input`, run in the worker's process, which keeps its
loaded backend between tasks). A worker that dies takes its task with it and the scheduler gives
it to another (up to ``distributed.scheduler.allowed-failures`` + 1 times, then the input fails
with Dask's ``KilledWorker``); each attempt writes its own temporary folder, so only a finished
one becomes the input's. Progress comes back as Dask events on a topic of this batch's own.

Every path in a task is absolute: the config, the inputs and the output folder must be where
every worker sees them at the same path (a shared folder).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

from edgedepth.api.errors import EdgedepthError
from edgedepth.batch.job import InputTask, Notify, OnResult, ProgressEvent, run_input
from edgedepth.batch.report import InputResult

log = logging.getLogger("edgedepth")

NEEDS_DASK = "--scheduler needs Dask distributed: pip install 'edgedepth[dask]'"

#: Seconds to reach the scheduler before giving up (Dask retries a refused connection).
CONNECT_SECONDS = 10


def run_on_worker(task: InputTask, topic: str) -> InputResult:
    """The task a Dask worker runs: one input, its progress logged as events on ``topic``."""
    from distributed import get_worker

    worker = get_worker()

    def tell(event: ProgressEvent) -> None:
        worker.log_event(topic, list(event))

    return run_input(task, tell, worker=worker.address)


class DaskCluster:
    """The workers of the Dask scheduler at ``address``."""

    def __init__(self, address: str) -> None:
        try:
            from distributed.comm.addressing import parse_address, parse_host_port
        except ImportError:
            raise EdgedepthError(NEEDS_DASK) from None
        try:
            parse_host_port(parse_address(address)[1])
        except ValueError as exc:
            raise EdgedepthError(
                f"--scheduler {address}: not a scheduler address such as tcp://HOST:8786 ({exc})"
            ) from None
        self.address = address

    @property
    def description(self) -> str:
        return f"Dask scheduler {self.address}"

    def run(self, tasks: Sequence[InputTask], notify: Notify, done: OnResult) -> None:
        """Submit every task; ``done`` is called with each result as it comes."""
        from distributed import Client, as_completed

        try:
            client = Client(self.address, timeout=CONNECT_SECONDS, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise EdgedepthError(
                f"--scheduler {self.address}: cannot reach the Dask scheduler ({exc})"
            ) from None
        batch_id = secrets.token_hex(4)
        topic = f"edgedepth-batch-{batch_id}"

        def on_event(event: tuple[float, Any]) -> None:
            name, kind, count = event[1]
            notify((name, kind, count))

        futures = {}
        try:
            workers = client.scheduler_info().get("workers", {})
            log.info("Dask: %d worker(s) at %s", len(workers), self.address)
            if not workers:
                log.warning(
                    "warning: the Dask scheduler %s has no workers yet: the inputs wait for the "
                    "first `dask worker %s`",
                    self.address,
                    self.address,
                )
            client.subscribe_topic(topic, on_event)
            for task in tasks:
                key = f"edgedepth-batch-{batch_id}-{task.name}"
                future = client.submit(run_on_worker, task, topic, key=key, pure=False)
                futures[future] = task
            for future in as_completed(futures, loop=client.loop):
                done(self._result(future, futures[future]))
        finally:
            pending = [future for future in futures if not future.done()]
            if pending:  # stopped: queued inputs are dropped (running ones finish on their own)
                client.cancel(pending)
            client.close()

    @staticmethod
    def _result(future: Any, task: InputTask) -> InputResult:
        from distributed.scheduler import KilledWorker

        try:
            return future.result()
        except KilledWorker as exc:
            error = f"Dask gave up after its workers died running it ({exc})"
        except Exception as exc:
            error = f"Dask: {type(exc).__name__}: {exc}"
        return InputResult(str(task.input.path), task.name, state="failed", error=error)
