"""A counter that can be awaited past a value: how live streams learn there is more.

Each bump wakes every waiter and queues nothing, so a follower that is slow to come
back costs no memory: it finds the counter moved and reads what is new from where the
data already is.
"""

from __future__ import annotations

import asyncio


class Nudge:
    def __init__(self) -> None:
        self.version = 0
        self._moved = asyncio.Event()

    def bump(self) -> None:
        self.version += 1
        self._moved.set()
        self._moved = asyncio.Event()

    async def wait_past(self, version: int) -> None:
        """Return once the counter has moved past ``version``."""
        while self.version == version:
            await self._moved.wait()
