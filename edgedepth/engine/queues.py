"""Bounded queues between stages, with a named policy (as DepthAI and Holoscan name theirs).

- ``block``: the producer waits while the queue is full. Nothing is lost; memory is bounded.
  For file sources, where every frame must be processed.
- ``latest``: a full queue drops its oldest item to make room, and counts it. Latency cannot
  grow. For live sources, where the newest frame wins.

A queue is full at ``capacity`` items or, with ``max_bytes``, when the next item would take it
past that many bytes (``size_of`` measures an item); one item is always accepted, however large,
so a big frame cannot stall the pipeline.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
QueuePolicy = Literal["block", "latest"]


class Closed(Exception):
    """The queue was closed (end of stream) and is empty, or was aborted."""


class StageQueue(Generic[T]):
    def __init__(
        self,
        name: str,
        capacity: int,
        policy: QueuePolicy,
        on_drop: Callable[[T], None] | None = None,
        max_bytes: int | None = None,
        size_of: Callable[[T], int] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        if max_bytes is not None and size_of is None:
            raise ValueError("max_bytes needs size_of")
        self.name = name
        self.capacity = capacity
        self.policy = policy
        self.max_bytes = max_bytes
        self._size_of = size_of
        #: Bytes of the queued items (0 without ``max_bytes``).
        self.bytes = 0
        self.dropped = 0
        self._on_drop = on_drop
        self._items: deque[T] = deque()
        self._sizes: deque[int] = deque()
        self._condition = threading.Condition()
        self._closed = False
        self._aborted = False

    def put(self, item: T) -> None:
        """Add an item (waiting or dropping the oldest as the policy says); raises
        :class:`Closed` if the queue is closed or aborted, also while waiting for room, so a
        producer can never wait on a consumer that is gone."""
        size = self._size_of(item) if self.max_bytes is not None else 0  # type: ignore[misc]
        with self._condition:
            if self.policy == "block":
                while self._full(size) and not self._ended:
                    self._condition.wait()
            if self._ended:
                raise Closed(self.name)
            while self._full(size):
                stale = self._items.popleft()
                self.bytes -= self._sizes.popleft()
                self.dropped += 1
                if self._on_drop is not None:
                    self._on_drop(stale)
            self._items.append(item)
            self._sizes.append(size)
            self.bytes += size
            self._condition.notify_all()

    def _full(self, size: int) -> bool:
        if len(self._items) >= self.capacity:
            return True
        return (
            self.max_bytes is not None and bool(self._items) and self.bytes + size > self.max_bytes
        )

    @property
    def _ended(self) -> bool:
        return self._closed or self._aborted

    def get(self) -> T:
        """Next item; raises :class:`Closed` at end of stream or when aborted."""
        with self._condition:
            while not self._items and not self._closed and not self._aborted:
                self._condition.wait()
            if self._aborted or not self._items:
                raise Closed(self.name)
            item = self._items.popleft()
            self.bytes -= self._sizes.popleft()
            self._condition.notify_all()
            return item

    def close(self) -> None:
        """End of stream: consumers drain what is queued, then get :class:`Closed`; producers
        get :class:`Closed` at once."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def abort(self) -> None:
        """Stop now: queued items are discarded, waiting producers and consumers are released."""
        with self._condition:
            self._aborted = True
            self._items.clear()
            self._sizes.clear()
            self.bytes = 0
            self._condition.notify_all()

    def __len__(self) -> int:
        with self._condition:
            return len(self._items)
