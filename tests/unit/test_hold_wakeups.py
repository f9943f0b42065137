"""A run waiting for a lock looks again as soon as the lock is given back, even when
the give-back comes while its own look is still reading the database.  (Two
per-second tasks sharing a lock fell seconds behind in the soak: a give-back during
a look was lost, and the waiter slept its full second before looking again.)"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping

import pytest
from dispatch_doubles import T0, rig  # type: ignore[import-not-found]

from cronwarden.model import Trigger
from cronwarden.ports import Holder
from cronwarden.runners import holds as holds_module
from cronwarden.runners.holds import HoldPlace, lock_key
from cronwarden.runners.lifecycle import RunHandle

LOCKED = '[tasks.job]\ncommand = "true"\nlocks = ["db"]\n'


class FreedMidLook:
    """The lock is held when the first look reads it; it is freed while that look is
    still on its way back."""

    def __init__(self) -> None:
        self.looks = 0
        self.reading = asyncio.Event()
        self.answer = asyncio.Event()

    async def take(self, run_id: str, wants: Mapping[str, int]) -> list[Holder] | None:
        self.looks += 1
        if self.looks > 1:
            return None  # free now: taken
        self.reading.set()
        await self.answer.wait()
        return [Holder(lock_key("db"), "earlier-run", "job", "n1", T0)]

    async def holders(self, names: Collection[str] | None = None) -> list[Holder]:
        return []

    async def announce_freed(self, names: Collection[str]) -> None:
        return None


async def test_a_give_back_during_a_look_is_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(holds_module, "LOOK_EVERY", 3600.0)  # no periodic look to hide it
    r = rig(LOCKED)
    holds = FreedMidLook()
    place = HoldPlace(holds, r.live)
    task = r.live.current.tasks["job"]
    waiting = asyncio.create_task(place.take(RunHandle(r.new_run(task, Trigger.API), task)))
    await holds.reading.wait()
    place.changed()  # the earlier run gave the lock back while the look was reading
    holds.answer.set()
    assert await asyncio.wait_for(waiting, timeout=10) is None
    assert holds.looks == 2
