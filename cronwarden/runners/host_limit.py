"""``[daemon] max_concurrent_runs``: at most that many processes at once on this host.

Runs admitted by their task (max_concurrent, overlap) beyond the limit wait here, still
``pending``, and are let through one task at a time in turn: when a place frees, the
task that waited longest without being served goes first, and within a task the oldest
run.  So one task with a thousand due runs cannot starve another with one.

Pure bookkeeping with futures; the dispatcher decides what waiting means for a run
(a stop while it waits ends it before it started).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque


class HostLimit:
    def __init__(self, limit: int = 0) -> None:
        self.limit = limit  # 0: no limit
        self.holders: set[str] = set()
        self._lines: OrderedDict[str, deque[tuple[str, asyncio.Future[None]]]] = OrderedDict()
        # Run ids in a line, with their futures.  A run that leaves its line only has
        # its future cancelled; the line entry is skipped when its turn comes.
        self._waiting: dict[str, asyncio.Future[None]] = {}

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def is_waiting(self, run_id: str) -> bool:
        return run_id in self._waiting

    def _has_room(self) -> bool:
        return self.limit <= 0 or len(self.holders) < self.limit

    def take(self, task: str, run_id: str) -> asyncio.Future[None] | None:
        """Take a place now (None), or join the task's line: the future is done once
        the run holds a place."""
        if self._has_room() and not self._lines:
            self.holders.add(run_id)
            return None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lines.setdefault(task, deque()).append((run_id, waiter))
        self._waiting[run_id] = waiter
        self._grant()
        return waiter

    def occupy(self, run_id: str) -> None:
        """A run already running (adopted after a restart) holds a place regardless."""
        self.holders.add(run_id)

    def release(self, run_id: str) -> None:
        """The run ended, or left its line."""
        self.holders.discard(run_id)
        leaving = self._waiting.pop(run_id, None)
        if leaving is not None:
            leaving.cancel()
        self._grant()

    def set_limit(self, limit: int) -> None:
        self.limit = limit
        self._grant()

    def _grant(self) -> None:
        while self._lines and self._has_room():
            task, line = next(iter(self._lines.items()))
            run_id, waiter = line.popleft()
            self._waiting.pop(run_id, None)
            # The task goes to the back of the turn order (or leaves it).
            del self._lines[task]
            if line:
                self._lines[task] = line
            if waiter.done():  # cancelled: its run gave up waiting
                continue
            self.holders.add(run_id)
            waiter.set_result(None)
