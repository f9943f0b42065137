"""Spawn pacing: at most STARTS_UNDER_WAY runs between their turn and their spawn.

Processes start on the spawner's thread (runners/spawner.py), one at a time, while
the loop goes on.  Without a bound the loop would prepare every run due at once
(a thousand at a minute's start), each with its pipes and log file open, queued
behind the forks: a 10,000-task minute ran out of file descriptors that way.  A few
under way keep the spawner busy, and fds open only for runs about to start.  Runs
waiting for a turn go in the order they came, without polling.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

STARTS_UNDER_WAY = 8


class SpawnPacer:
    def __init__(self, under_way: int = STARTS_UNDER_WAY) -> None:
        self._free = under_way
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def turn(self) -> Callable[[], None]:
        """Return once the caller may start its process; call what is returned once it
        has started, or will not (more than once is harmless)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._give_back()  # given a turn as it was cancelled: pass it on
                raise
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._give_back()

        return release

    def _give_back(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter gives its place away
                waiter.set_result(None)
                return
        self._free += 1
