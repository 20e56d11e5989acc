"""Politeness per host: at most N requests in flight, starts at least S seconds apart.

Time here is real time (``time.monotonic``): it spaces real requests, whatever
simulated ``now`` the scheduler's tick was given.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class HostGate:
    """Per host, a semaphore of ``limit`` slots and a start time for the next request."""

    def __init__(
        self,
        limit: int,
        spacing: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self.spacing = spacing
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._next_start: defaultdict[str, float] = defaultdict(float)

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        """Hold one of ``host``'s slots, starting no sooner than ``spacing`` after the
        previous request to it started."""
        with self._lock:
            semaphore = self._slots.get(host)
            if semaphore is None:
                semaphore = self._slots[host] = threading.BoundedSemaphore(self.limit)
        with semaphore:
            if self.spacing > 0:
                with self._lock:
                    start = max(self._clock(), self._next_start[host])
                    self._next_start[host] = start + self.spacing
                wait = start - self._clock()
                if wait > 0:
                    self._sleep(wait)
            yield


def interleave(
    items: Iterable[T],
    key: Callable[[T], str],
    per_key: int | None,
    *,
    already: Mapping[str, int] | None = None,
) -> list[T]:
    """``items`` reordered round-robin by ``key`` (one of each host, then the next of
    each ...), at most ``per_key`` of each (None: all) less what ``already`` counts
    for it, so that a pool working through them in order is never filled with
    requests waiting for one busy host."""
    already = already or {}
    queues: dict[str, deque[T]] = {}
    for item in items:
        name = key(item)
        queue = queues.setdefault(name, deque())
        if per_key is None or len(queue) + already.get(name, 0) < per_key:
            queue.append(item)
    queues = {name: queue for name, queue in queues.items() if queue}
    out: list[T] = []
    while queues:
        for name in list(queues):
            queue = queues[name]
            out.append(queue.popleft())
            if not queue:
                del queues[name]
    return out
