"""Bounded queues between stages, with a named policy (as DepthAI and Holoscan name theirs).

- ``block``: the producer waits while the queue is full. Nothing is lost; memory is bounded.
  For file sources, where every frame must be processed.
- ``latest``: a full queue drops its oldest item to make room, and counts it. Latency cannot
  grow. For live sources, where the newest frame wins.
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
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.name = name
        self.capacity = capacity
        self.policy = policy
        self.dropped = 0
        self._on_drop = on_drop
        self._items: deque[T] = deque()
        self._condition = threading.Condition()
        self._closed = False
        self._aborted = False

    def put(self, item: T) -> None:
        """Add an item (waiting or dropping the oldest as the policy says); raises
        :class:`Closed` if the queue is closed or aborted, also while waiting for room, so a
        producer can never wait on a consumer that is gone."""
        with self._condition:
            if self.policy == "block":
                while len(self._items) >= self.capacity and not self._ended:
                    self._condition.wait()
            if self._ended:
                raise Closed(self.name)
            if len(self._items) >= self.capacity:
                stale = self._items.popleft()
                self.dropped += 1
                if self._on_drop is not None:
                    self._on_drop(stale)
            self._items.append(item)
            self._condition.notify_all()

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
            self._condition.notify_all()

    def __len__(self) -> int:
        with self._condition:
            return len(self._items)
