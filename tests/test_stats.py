"""Run statistics: summaries read while stage threads are still recording."""

from __future__ import annotations

import sys
import threading

from edgedepth.engine.stats import RunStats


def test_summary_while_stages_still_record():
    """A stage thread still inside its last call (a QNN graph that could not be cancelled)
    records while the summary is printed: the summary reads a consistent copy."""
    stats = RunStats()
    stats.frame_captured()
    done = threading.Event()

    def record() -> None:
        for index in range(3000):  # a new stage name each time, and more samples of the first
            stats.record(f"stage-{index}", 0.001)
            stats.record("stage-0", 0.001)
            stats.frame_done(0.0)
        done.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        thread = threading.Thread(target=record)
        thread.start()
        summaries = 0
        while not done.is_set():
            stats.format_table()
            stats.as_dict(samples=True)
            summaries += 1
        thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert summaries > 0 and stats.frames_out == 3000
