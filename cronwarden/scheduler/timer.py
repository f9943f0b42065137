"""One timer for every scheduled task: a heap of next fires, and the loop woken once,
at the earliest of them.

APScheduler 3 kept a Job object per task, re-sorted its job list on each change and
inspected each callable as it was added: with 10,000 tasks that was about a tenth of
the start-up and the largest share of the daemon's memory past its imports (see
BENCHMARKS.md).  What the scheduler needs of a timer is only "call me with this task
at this instant", which a heap gives at O(log n) per fire.

The clock is the daemon's (a fake one in tests).  The loop sleeps at most MAX_SLEEP at
a time, so a wall clock that jumped (a suspended host, a stepped clock) is noticed
within that long; fires it jumped over are due at once, and the scheduler's catch-up
policy decides what they become.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import datetime, timedelta

from cronwarden.clock import Cancellable, Clock

MAX_SLEEP = timedelta(seconds=60)


class FireTimer:
    def __init__(self, clock: Clock, on_due: Callable[[str, datetime], None]) -> None:
        self._clock = clock
        self._on_due = on_due
        # (instant, task); an entry whose instant is no longer the task's is stale and
        # skipped when it comes up (cheaper than removing it from the middle).
        self._heap: list[tuple[datetime, str]] = []
        self._next: dict[str, datetime] = {}
        self._armed: tuple[datetime, Cancellable] | None = None
        self._running = False

    def start(self) -> None:
        self._running = True
        self._arm()

    def stop(self) -> None:
        self._running = False
        self._disarm()

    def set(self, task_name: str, when: datetime) -> None:
        """Call on_due(task_name, when) once ``when`` comes (replacing an earlier set)."""
        self._next[task_name] = when
        heapq.heappush(self._heap, (when, task_name))
        self._arm()

    def clear(self, task_name: str) -> None:
        self._next.pop(task_name, None)

    def next_fire(self, task_name: str) -> datetime | None:
        return self._next.get(task_name)

    def _arm(self) -> None:
        if not self._running:
            return
        while self._heap and self._next.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # stale
        if not self._heap:
            self._disarm()
            return
        wake = min(self._heap[0][0], self._clock.now() + MAX_SLEEP)
        if self._armed is not None and self._armed[0] <= wake:
            return  # it wakes early enough already; it re-arms then
        self._disarm()
        self._armed = (wake, self._clock.call_at(wake, self._wake))

    def _disarm(self) -> None:
        if self._armed is not None:
            self._armed[1].cancel()
            self._armed = None

    def _wake(self) -> None:
        self._armed = None
        now = self._clock.now()
        due: list[tuple[str, datetime]] = []
        while self._heap and self._heap[0][0] <= now:
            when, task_name = heapq.heappop(self._heap)
            if self._next.get(task_name) == when:
                del self._next[task_name]
                due.append((task_name, when))
        for task_name, when in due:  # in instant order; on_due sets the next fires
            if self._running:
                self._on_due(task_name, when)
        self._arm()
