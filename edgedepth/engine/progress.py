"""Progress of the long steps: the first ONNX export, a QNN compile, AI Hub waits, eval over a
folder, calibration frames. A bar with an estimate of the time left, on stderr, only when it is
a terminal (``EDGEDEPTH_PROGRESS=1`` shows it anyway, ``=0`` never); while a bar is up,
edgedepth's log lines are written above it, never through it. Logs and pipes get no bars, and
a long call still logs a line when it starts, so that no pause is silent.

Two shapes of work:

- items (frames, files): :func:`steps`, tqdm over them: rate and ETA;
- one long call (an export, a compile, a job on AI Hub): :func:`long_call`, a bar ticking the
  elapsed time against an estimate: the same step's last duration on this machine (kept in
  ``<cache>/step-times.json``), scaled by the size of the work (the graph's bytes, the model's
  parameters) when the last one was of another size; before the first one, a rate measured
  on the project's machines where there is one. The file is the machine's, in the default
  cache (``$EDGEDEPTH_CACHE`` or ~/.cache/edgedepth), whatever cache a config names.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tqdm import tqdm

log = logging.getLogger("edgedepth")

T = TypeVar("T")

#: Seconds per unit of work before this machine has done a step once (measured on a 2-core
#: x86-64 machine: ViT-S export 4.4 s for 24.8 M parameters; ViT-S at 350² compiled for the HTP
#: emulator in 9.8 s, 99 MB of graph). Others: no estimate, the bar shows the elapsed time.
FIRST_RATES: dict[str, float] = {"export": 0.18e-6, "qnn-compile": 0.1e-6}


def enabled() -> bool:
    """Bars on stderr: ``EDGEDEPTH_PROGRESS`` (1 or 0) if set, else when stderr is a terminal."""
    forced = os.environ.get("EDGEDEPTH_PROGRESS", "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    return sys.stderr.isatty()


@contextlib.contextmanager
def above_bars() -> Iterator[None]:
    """edgedepth's log lines go above the bar while it is shown."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(loggers=[log]):
        yield


def steps(
    items: Iterable[T], total: int | None, description: str, unit: str = "frame"
) -> Iterator[T]:
    """``items`` with a bar (count, rate, ETA) when bars are on."""
    if not enabled():
        yield from items
        return
    from tqdm import tqdm

    bar = tqdm(items, total=total, desc=description, unit=unit, file=sys.stderr, leave=False)
    with above_bars(), bar:
        yield from bar


def bar(description: str, total: int | None, unit: str, position: int = 0) -> tqdm:
    """A bar updated by hand (``bar.update(n)``; ``bar.total`` may grow), on stderr when bars
    are on (a disabled one otherwise); close it when done. Log lines meanwhile: in
    :func:`above_bars`."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        position=position,
        file=sys.stderr,
        leave=False,
        disable=not enabled(),
    )


class StepTimes:
    """How long each kind of long call took on this machine: ``{step: {key: [work, seconds]}}``
    in a JSON file in the cache."""

    def __init__(self, cache_dir: Path) -> None:
        self.path = cache_dir / "step-times.json"

    def _read(self) -> dict[str, dict[str, list[float]]]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def estimate(self, step: str, key: str, work: float) -> float | None:
        """Seconds: the same key's last time, else the step's most recent rate × ``work``."""
        known = self._read().get(step, {})
        if key in known:
            return known[key][1]
        if known:
            last_work, last_seconds = list(known.values())[-1]
            return last_seconds * work / max(last_work, 1e-9)
        rate = FIRST_RATES.get(step)
        return rate * work if rate else None

    def record(self, step: str, key: str, work: float, seconds: float) -> None:
        times = self._read()
        entries = times.setdefault(step, {})
        entries.pop(key, None)  # most recent last
        entries[key] = [work, round(seconds, 2)]
        with contextlib.suppress(OSError):  # an estimate is never worth failing for
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".partial")
            partial.write_text(json.dumps(times, indent=1))
            partial.replace(self.path)


class LongCall:
    """The bar of one long call; :meth:`status` shows a word beside it (an AI Hub job state)."""

    def __init__(self, bar: tqdm | None) -> None:
        self.bar = bar

    def status(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=True)


@contextlib.contextmanager
def long_call(description: str, step: str, key: str, work: float = 1.0) -> Iterator[LongCall]:
    """Time one long call: log its start (with the estimate), tick a bar while it runs, and
    record how long it took for the next estimate. ``key`` names what was done (a model and
    size: the same key again takes as long), ``work`` its size for scaling."""
    from edgedepth.engine.config import default_cache_dir

    times = StepTimes(default_cache_dir())
    estimate = times.estimate(step, key, work)
    log.info("%s%s…", description, f" (about {_duration(estimate)})" if estimate else "")
    started = time.monotonic()
    if not enabled():
        yield LongCall(None)
    else:
        done = threading.Event()
        if estimate:
            about = _duration(estimate)
            layout = "{desc}: {percentage:3.0f}%|{bar}| {elapsed} of about " + about + "{postfix}"
        else:
            layout = "{desc}: {elapsed} (no estimate yet: the first time on this machine){postfix}"
        from tqdm import tqdm

        bar = tqdm(
            total=estimate, desc=description, bar_format=layout, file=sys.stderr, leave=False
        )
        with above_bars(), bar:

            def tick() -> None:
                while not done.wait(0.5):
                    elapsed = time.monotonic() - started
                    bar.n = min(elapsed, 0.99 * estimate) if estimate else elapsed
                    if estimate and elapsed > estimate:
                        bar.set_postfix_str("longer than the last time", refresh=False)
                    bar.refresh()

            ticker = threading.Thread(target=tick, name="progress", daemon=True)
            ticker.start()
            try:
                yield LongCall(bar)
            finally:
                done.set()
                ticker.join()
    times.record(step, key, work, time.monotonic() - started)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    return f"{seconds / 60:.0f} min"
