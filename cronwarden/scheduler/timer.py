"""One timer for every scheduled task: a heap of next fires, and the loop woken once,
at the earliest of them.

APScheduler 3 kept a Job object per task, re-sorted its job list on each change and
inspected each callable as it was added: with 10,000 tasks that was about a tenth of
the start-up and the largest share of the daemon's memory past its imports (see
BENCHMARKS.md).  What the scheduler needs of a timer is only "call me with this task
at this instant", which a heap gives at O(log n) per fire.

A fire can also be announced ahead of its instant (``on_soon``): the scheduler
commits the fire's run row then, so that at the instant only the spawn is left (see
SchedulerService).  How far ahead (``lead``) depends on how many fires share the
instant: the timer counts them.  An instant is announced once it is the earliest
ahead and its lead has come: a crowded one right behind a sparse one is announced when
the sparse one is, a shorter lead than it asked for.

A wake hands over at most WAKE_BATCH due fires and comes again at once for the rest:
the first of 10,000 fires sharing an instant go to their claim and start while the
others are handed over, and /health is answered between the batches.  (Their
announcements are not batched: they are reserved together, in one write.)

The clock is the daemon's (a fake one in tests).  The loop sleeps at most MAX_SLEEP at
a time, so a wall clock that jumped (a suspended host, a stepped clock) is noticed
within that long; fires it jumped over are due at once, and the scheduler's catch-up
policy decides what they become.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import datetime, timedelta

from cronwarden.support.clock import Cancellable, Clock

MAX_SLEEP = timedelta(seconds=60)
WAKE_BATCH = 500  # due fires handed over by one wake at most


def no_lead(fires: int) -> timedelta:
    """Fires are only due, never announced."""
    return timedelta(0)


class FireTimer:
    def __init__(
        self,
        clock: Clock,
        on_due: Callable[[str, datetime], None],
        *,
        on_soon: Callable[[str, datetime], None] | None = None,
        lead: Callable[[int], timedelta] = no_lead,
    ) -> None:
        self._clock = clock
        self._on_due = on_due
        self._on_soon = on_soon
        self._lead = lead if on_soon is not None else no_lead
        # (instant, task); an entry whose instant is no longer the task's is stale and
        # skipped when it comes up (cheaper than removing it from the middle).  Fires
        # move from _heap to _soon once announced.
        self._heap: list[tuple[datetime, str]] = []
        self._soon: list[tuple[datetime, str]] = []
        self._next: dict[str, datetime] = {}
        self._crowd: dict[datetime, int] = {}  # entries in _heap by instant (stale too)
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
        self._crowd[when] = self._crowd.get(when, 0) + 1
        self._arm()

    def clear(self, task_name: str) -> None:
        self._next.pop(task_name, None)

    def next_fire(self, task_name: str) -> datetime | None:
        return self._next.get(task_name)

    def earliest(self) -> datetime | None:
        """The next instant any task fires, announced or not."""
        instants = [
            i for i in (self._current(self._soon), self._current(self._heap)) if i is not None
        ]
        return min(instants, default=None)

    def _current(self, heap: list[tuple[datetime, str]]) -> datetime | None:
        """The earliest instant in ``heap`` that is still its task's (stale ones go)."""
        while heap and self._next.get(heap[0][1]) != heap[0][0]:
            self._pop(heap)
        return heap[0][0] if heap else None

    def _pop(self, heap: list[tuple[datetime, str]]) -> tuple[datetime, str]:
        entry = heapq.heappop(heap)
        if heap is self._heap:
            left = self._crowd[entry[0]] - 1
            if left:
                self._crowd[entry[0]] = left
            else:
                del self._crowd[entry[0]]
        return entry

    def _announce_at(self, instant: datetime) -> datetime:
        return instant - self._lead(self._crowd.get(instant, 1))

    def _arm(self) -> None:
        if not self._running:
            return
        wakes = [self._clock.now() + MAX_SLEEP]
        announce = self._current(self._heap)
        if announce is not None:
            wakes.append(self._announce_at(announce))
        due = self._current(self._soon)
        if announce is None and due is None:
            self._disarm()
            return
        if due is not None:
            wakes.append(due)
        wake = min(wakes)
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
        soon: list[tuple[datetime, str]] = []
        while (first := self._current(self._heap)) is not None and self._announce_at(first) <= now:
            soon += self._pop_current(self._heap, until=first)
        for entry in soon:
            heapq.heappush(self._soon, entry)
        due = self._pop_current(self._soon, until=now, limit=WAKE_BATCH)
        for _, task_name in due:
            del self._next[task_name]
        # Due fires first: they are late already, announcements have the lead to spare.
        for when, task_name in due:  # in instant order
            if self._running:
                self._on_due(task_name, when)
        if self._on_soon is not None:
            for when, task_name in soon:
                # Not one whose instant came already: it is due at the next wake.
                if self._running and when > now and self._next.get(task_name) == when:
                    self._on_soon(task_name, when)
        self._arm()

    def _pop_current(
        self, heap: list[tuple[datetime, str]], until: datetime, limit: int | None = None
    ) -> list[tuple[datetime, str]]:
        """Take the entries of ``heap`` up to ``until`` that are still their task's, in
        instant order, ``limit`` at most."""
        taken: dict[str, datetime] = {}  # a task set twice to one instant is taken once
        while heap and heap[0][0] <= until and (limit is None or len(taken) < limit):
            when, task_name = self._pop(heap)
            if self._next.get(task_name) == when:
                taken[task_name] = when
        return [(when, task_name) for task_name, when in taken.items()]
