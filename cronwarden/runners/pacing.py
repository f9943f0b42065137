"""Spawn pacing: at most SPAWNS_PER_TURN forks per turn of the event loop.

Spawning a thousand runs due at once in a single turn would handle no exit and no end
of output until the last fork, so pipes and pidfds of finished runs pile up, and every
fork-exec pays for each fd open in the daemon.  A few per turn keeps them reaped as
they go.  Runs waiting for a turn go in the order they came, without polling.

Two, not more: each fork waits for its child to get a core (vfork), and everything
else the loop has to do waits for the turn's forks.  In a 10,000-task minute, eight a
turn kept /health at p50 39-48 ms, two at 13 ms; the runs all started in about the
same time (BENCHMARKS.md, "spawns a turn").
"""

from __future__ import annotations

import asyncio
from collections import deque

SPAWNS_PER_TURN = 2


class SpawnPacer:
    def __init__(self, per_turn: int = SPAWNS_PER_TURN) -> None:
        self._per_turn = per_turn
        self._this_turn = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def turn(self) -> None:
        """Return once this turn of the loop has a fork to spare for the caller."""
        if self._this_turn < self._per_turn and not self._waiters:
            self._take()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _take(self) -> None:
        if self._this_turn == 0:
            asyncio.get_running_loop().call_soon(self._new_turn)
        self._this_turn += 1

    def _new_turn(self) -> None:
        self._this_turn = 0
        while self._waiters and self._this_turn < self._per_turn:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter gives its place away
                self._take()
                waiter.set_result(None)
