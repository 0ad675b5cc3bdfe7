"""A Dask cluster on this machine, started with the ``dask`` command line as a user starts one
(``dask scheduler``, then ``dask worker`` processes), every port on 127.0.0.1: for the tests and
``bench/batch.py``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

#: ``--host`` binds the scheduler's and the workers' own ports, but not the HTTP server each
#: also runs (metrics and health; the dashboard when bokeh is installed), with or without
#: ``--no-dashboard``: without ``--dashboard-address`` it listens on all interfaces
#: (0.0.0.0:8787 for the scheduler, a random port for each worker).
LOOPBACK = ["--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0"]


@contextlib.contextmanager
def dask_cluster(folder: Path, workers: int = 2) -> Iterator[tuple[str, dict[int, str]]]:
    """A scheduler and ``workers`` single-threaded workers without nannies (killing a worker's
    process kills the worker): (scheduler address, {worker pid: worker address})."""
    from distributed import Client

    scheduler_file = folder / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    command = [
        *dask,
        "scheduler",
        *LOOPBACK,
        "--port",
        "0",
        "--scheduler-file",
        str(scheduler_file),
    ]
    processes = [subprocess.Popen(command, **quiet)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            if time.monotonic() > deadline or processes[0].poll() is not None:
                raise RuntimeError("the Dask scheduler did not start")
            time.sleep(0.1)
        for index in range(workers):
            command = [*dask, "worker", *LOOPBACK, "--nthreads", "1", "--no-nanny"]
            command += ["--scheduler-file", str(scheduler_file)]
            command += ["--local-directory", str(folder / f"dask-worker-{index}")]
            processes.append(subprocess.Popen(command, **quiet))
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
            address = client.scheduler.address
            pids = {pid: worker for worker, pid in client.run(os.getpid).items()}
        yield address, pids
    finally:
        for process in processes:
            process.kill()
            process.wait(30)
