"""Per-stage timing, frame counts and latency, and the summary table printed after a run."""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Percentiles are computed over the most recent samples, so a long live run stays bounded.
MAX_SAMPLES = 100_000


@dataclass
class Timings:
    """Durations in seconds of one stage (or one sink), most recent :data:`MAX_SAMPLES`."""

    samples: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    count: int = 0

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self.count += 1

    def copy(self) -> Timings:
        return Timings(deque(self.samples, maxlen=MAX_SAMPLES), self.count)

    def summary_ms(self) -> dict[str, float]:
        if not self.samples:
            return {
                "count": 0,
                "p50_ms": float("nan"),
                "p95_ms": float("nan"),
                "max_ms": float("nan"),
            }
        values = np.fromiter(self.samples, dtype=np.float64) * 1000.0
        return {
            "count": self.count,
            "mean_ms": float(values.mean()),
            "p50_ms": float(np.percentile(values, 50)),
            "p95_ms": float(np.percentile(values, 95)),
            "max_ms": float(values.max()),
        }


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far (None where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


class RunStats:
    """Thread-safe counters of one pipeline run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stages: dict[str, Timings] = {}
        self.latency = Timings()
        self.frames_in = 0
        self.frames_out = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.first_output_at: float | None = None
        self.dropped_by_queue: dict[str, int] = {}

    def record(self, stage: str, seconds: float) -> None:
        with self._lock:
            timings = self.stages.get(stage)
            if timings is None:
                timings = self.stages[stage] = Timings()
            timings.add(seconds)

    def frame_captured(self) -> None:
        with self._lock:
            self.frames_in += 1
            if self.started_at is None:
                self.started_at = time.perf_counter()

    def frame_done(self, captured_at: float) -> None:
        now = time.perf_counter()
        with self._lock:
            self.frames_out += 1
            self.latency.add(now - captured_at)
            self.finished_at = now
            if self.first_output_at is None:
                self.first_output_at = now

    def timings(self) -> tuple[dict[str, Timings], Timings]:
        """Copies of the stages' and the latency's timings, taken under the lock: a summary
        may be read while a stage thread that could not be stopped still records."""
        with self._lock:
            return {name: t.copy() for name, t in self.stages.items()}, self.latency.copy()

    @property
    def dropped(self) -> int:
        return sum(self.dropped_by_queue.values())

    @property
    def wall_seconds(self) -> float:
        if self.started_at is None or self.finished_at is None:
            return 0.0
        return self.finished_at - self.started_at

    @property
    def fps(self) -> float:
        """Output frames per second, over the whole run (first capture to last output)."""
        wall = self.wall_seconds
        return self.frames_out / wall if wall > 0 else 0.0

    @property
    def steady_fps(self) -> float:
        """Output rate once the pipeline is full (first output to last output): the throughput
        of the slowest stage, without the start-up (model load, first frame) counted in."""
        if self.first_output_at is None or self.finished_at is None or self.frames_out < 2:
            return self.fps
        span = self.finished_at - self.first_output_at
        return (self.frames_out - 1) / span if span > 0 else 0.0

    def as_dict(self, samples: bool = False) -> dict[str, Any]:
        """The summary; with ``samples`` also every stage's recent durations (ms), for plots."""
        stages, latency = self.timings()
        summary = {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": self.dropped,
            "dropped_by_queue": dict(self.dropped_by_queue),
            "wall_seconds": self.wall_seconds,
            "fps": self.fps,
            "steady_fps": self.steady_fps,
            "latency": latency.summary_ms(),
            "stages": {name: t.summary_ms() for name, t in stages.items()},
            "peak_rss_mb": peak_rss_mb(),
        }
        if samples:
            summary["samples_ms"] = {
                name: [round(s * 1000, 3) for s in t.samples] for name, t in stages.items()
            }
        return summary

    def format_table(self) -> str:
        rows = [("stage", "frames", "p50 ms", "p95 ms", "max ms")]
        stages, latency = self.timings()
        for name, timings in stages.items():
            s = timings.summary_ms()
            rows.append(
                (
                    name,
                    str(s["count"]),
                    f"{s['p50_ms']:.1f}",
                    f"{s['p95_ms']:.1f}",
                    f"{s['max_ms']:.1f}",
                )
            )
        lat = latency.summary_ms()
        rows.append(
            (
                "end-to-end latency",
                str(lat["count"]),
                f"{lat['p50_ms']:.1f}",
                f"{lat['p95_ms']:.1f}",
                f"{lat['max_ms']:.1f}",
            )
        )
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = [
            "  ".join(
                cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            )
            for row in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        drops = ", ".join(f"{k}: {v}" for k, v in self.dropped_by_queue.items() if v) or "none"
        lines.append(
            f"frames in {self.frames_in}, out {self.frames_out}, dropped {self.dropped} ({drops}); "
            f"{self.fps:.2f} FPS over {self.wall_seconds:.2f} s, steady {self.steady_fps:.2f} FPS "
            "(from the first output on: start-up excluded)"
        )
        lines.append(
            "stage times are each call's own work; end-to-end latency runs from capture to the "
            "last sink, time waiting in queues included"
        )
        return "\n".join(lines)
