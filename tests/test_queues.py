from __future__ import annotations

import threading
import time

import pytest

from edgedepth.engine.queues import Closed, StageQueue


def test_latest_policy_drops_oldest_and_counts():
    dropped = []
    queue = StageQueue("q", 2, "latest", on_drop=dropped.append)
    for item in range(5):
        queue.put(item)
    assert queue.dropped == 3 and dropped == [0, 1, 2]
    assert [queue.get(), queue.get()] == [3, 4]


def test_block_policy_waits_for_the_consumer():
    queue = StageQueue("q", 1, "block")
    queue.put(1)
    done = threading.Event()

    def producer():
        queue.put(2)
        done.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not done.wait(0.2)  # full: the producer waits, nothing is dropped
    assert queue.get() == 1
    assert done.wait(2)
    assert queue.get() == 2 and queue.dropped == 0


def test_close_drains_then_ends_and_abort_releases_everyone():
    queue = StageQueue("q", 3, "block")
    queue.put("a")
    queue.close()
    assert queue.get() == "a"
    with pytest.raises(Closed):
        queue.get()

    full = StageQueue("q", 1, "block")
    full.put(1)
    errors = []

    def producer():
        try:
            full.put(2)
        except Closed:
            errors.append("closed")

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(0.1)
    full.abort()
    thread.join(2)
    assert errors == ["closed"]
    with pytest.raises(Closed):
        full.get()


def test_close_releases_a_producer_waiting_for_room():
    # The deadlock of a failed sink: its producer waited forever on a full queue that was only
    # closed (end of stream), never drained again.
    full = StageQueue("q", 1, "block")
    full.put(1)
    outcome = []

    def producer():
        try:
            full.put(2)
            outcome.append("put")
        except Closed:
            outcome.append("closed")

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(0.1)
    full.close()
    thread.join(2)
    assert outcome == ["closed"]
    assert full.get() == 1  # what was queued before the close still drains
    with pytest.raises(Closed):
        full.put(3)


def test_block_policy_bounds_bytes_too_and_always_takes_one_item():
    queue = StageQueue("q", 10, "block", max_bytes=100, size_of=len)
    queue.put(b"x" * 60)
    done = threading.Event()

    def producer():
        queue.put(b"y" * 60)  # 120 > 100 bytes: waits although 9 places are free
        queue.put(b"z" * 500)  # larger than the bound: taken once the queue is empty
        done.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not done.wait(0.2)
    assert queue.bytes == 60 and len(queue) == 1
    assert queue.get() == b"x" * 60
    assert queue.get() == b"y" * 60
    assert done.wait(2)
    assert queue.get() == b"z" * 500 and queue.bytes == 0
    assert queue.dropped == 0


def test_latest_policy_drops_oldest_to_fit_the_bytes():
    queue = StageQueue("q", 10, "latest", max_bytes=100, size_of=len)
    for item in (b"a" * 40, b"b" * 40, b"c" * 40):
        queue.put(item)
    assert queue.dropped == 1 and queue.bytes == 80
    assert queue.get() == b"b" * 40
