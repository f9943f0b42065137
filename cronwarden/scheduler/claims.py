"""The line of fires on their way to their claim.

A due fire is claimed (its run row written) in one write with the fires due beside it,
oldest first.  While the store does not answer, fires wait here in one line and retry
every STORE_RETRY, so they go as soon as it answers, all in one write, oldest first;
a fire still waiting LATE_GRACE after it came due can no longer run and is recorded
missed once the store is back (issue 24: never lost silently)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from cronwarden.errors import ShuttingDown, StoreUnavailable
from cronwarden.model import Trigger
from cronwarden.run_record import RunRecord
from cronwarden.scheduler.catchup import LATE_GRACE
from cronwarden.scheduler.ports import Dispatch
from cronwarden.support.clock import Clock

log = structlog.get_logger("cronwarden.scheduler")

# While the store does not answer, how often the fires waiting for it try again: they
# go this soon after it is back.  A failed attempt costs a refused connection.
STORE_RETRY = timedelta(milliseconds=250)


@dataclass(slots=True)
class DueFire:
    """A fire on its way to its claim, waiting for the store if it has to."""

    task_name: str
    scheduled_for: datetime
    trigger: Trigger
    give_up_at: datetime  # LATE_GRACE after it came due: then it is recorded missed
    reserved: bool = False  # whether its reservation's write came back
    row: RunRecord | None = None  # the reserved row (None: another node reserved the fire)

    def order(self) -> tuple[datetime, str]:
        return (self.scheduled_for, self.task_name)


class ClaimLine:
    def __init__(
        self,
        dispatch: Dispatch,
        clock: Clock,
        running: Callable[[], bool],
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
    ) -> None:
        self._dispatch = dispatch
        self._clock = clock
        self._running = running
        self._spawn = spawn  # the scheduler's: what it starts, it waits for at shutdown
        self._stalled: list[DueFire] = []
        self._waiter: asyncio.Task[Any] | None = None
        self._last_outage = ""  # what the store last said

    async def submit(self, fires: list[DueFire]) -> None:
        """Claim ``fires`` now, or behind the older ones while the store is down."""
        if self._stalled:  # the store is known to be down: wait behind the older fires
            self._stall(fires)
            return
        try:
            await self._start(fires)
        except StoreUnavailable as exc:
            self._last_outage = str(exc)
            self._stall(fires)

    async def _start(self, fires: list[DueFire]) -> None:
        """Claim ``fires`` in one write, oldest first, and start them; raises
        StoreUnavailable (nothing was claimed)."""
        fires = sorted(fires, key=DueFire.order)
        # Copies: a claim that fails part way must not leave its changes on the rows kept
        # for the next attempt.  With the report token whose hash the reservation
        # committed: without it, each run made and wrote a new one before its spawn.
        reserved = {
            (f.task_name, f.scheduled_for): None if f.row is None else f.row.copy(with_token=True)
            for f in fires
            if f.reserved
        }
        try:
            await self._dispatch.fire_many(
                [(f.task_name, f.scheduled_for, f.trigger) for f in fires], reserved=reserved
            )
        except ShuttingDown:
            pass
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("fire.failed", fires=len(fires))

    def _stall(self, fires: list[DueFire]) -> None:
        if not self._stalled:
            log.warning(
                "fire.waiting_for_store",
                fires=len(fires),
                grace_s=LATE_GRACE.seconds,
                error=self._last_outage,
            )
        self._stalled.extend(fires)
        if self._waiter is None or self._waiter.done():
            self._waiter = self._spawn(self._wait_out())

    async def _wait_out(self) -> None:
        """Retry the waiting fires every STORE_RETRY until the store answers, so they go
        as soon as it does, all in one write, oldest first (one backoff timer per claim
        let them go up to 15 s late and in any order).  A fire still waiting LATE_GRACE
        after it came due can no longer run: once the store is back it is recorded as
        missed (as catch-up records the fires it drops), never lost silently.  Fires
        still waiting at shutdown are left to the next start's catch-up: nothing newer
        than them was recorded, so it sees their gap."""
        failed = True  # a claim just failed: that is why this runs
        while self._stalled and self._running():
            if failed:
                await asyncio.sleep(STORE_RETRY.total_seconds())
            now = self._clock.now()
            waiting = list(self._stalled)
            fresh = [f for f in waiting if f.give_up_at >= now]
            late = [f for f in waiting if f.give_up_at < now]
            try:
                if fresh:
                    await self._start(fresh)
                else:  # an empty write: it lands once the store takes writes again
                    await self._dispatch.discard_reserved([])
            except StoreUnavailable as exc:
                self._last_outage, failed = str(exc), True
                continue
            failed = False  # fires that came due meanwhile go at once
            taken = {id(f) for f in waiting}
            self._stalled = [f for f in self._stalled if id(f) not in taken]
            if late:
                self._record_lost(late)
        if self._stalled:
            log.warning("fire.left_to_catch_up", fires=len(self._stalled))
            self._stalled = []

    def _record_lost(self, fires: list[DueFire]) -> None:
        """Fires that waited on the store past their grace, as missed runs per task."""
        by_task: dict[str, list[datetime]] = {}
        for fire in sorted(fires, key=DueFire.order):
            by_task.setdefault(fire.task_name, []).append(fire.scheduled_for)
        why = (
            f"the database could not be written within {LATE_GRACE.seconds} s of this fire "
            f"({self._last_outage or 'unavailable'})"
        )
        for task_name, missed in by_task.items():
            if not self._dispatch.is_configured(task_name):
                continue
            log.warning("fire.missed", task=task_name, missed=len(missed), why="store unavailable")
            self._spawn(self._dispatch.record_missed(task_name, missed, more=0, why=why))
