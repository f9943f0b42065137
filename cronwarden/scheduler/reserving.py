"""The scheduler's reservations in flight: fires whose rows are being committed, or
were, ahead of their instants, each until its instant uses it or its task's next fire
is untimed (what a reservation is, and why: cronwarden/reservations.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from cronwarden.run_record import RunRecord
from cronwarden.scheduler.claims import DueFire
from cronwarden.scheduler.ports import Dispatch

log = structlog.get_logger("cronwarden.scheduler")


@dataclass(frozen=True)
class Reservation:
    """A fire's reservation: its nominal fire time and the write it went in."""

    task_name: str
    scheduled_for: datetime
    # The batch's write: per task, the run committed, or None if another node's was.
    rows: asyncio.Future[dict[str, RunRecord | None]]

    async def fill(self, fire: DueFire) -> None:
        """Tell ``fire`` what its reservation came to: its row, or None when another
        node reserved the fire.  A write that failed tells nothing: the fire is then
        claimed at its instant as if it had no reservation."""
        try:
            rows = await self.rows
        except Exception:
            return
        if self.task_name in rows:
            fire.reserved, fire.row = True, rows[self.task_name]

    async def row(self) -> RunRecord | None:
        """The row committed for this node, if any."""
        try:
            return (await self.rows).get(self.task_name)
        except Exception:
            return None  # nothing was reserved


class Reservations:
    """The reservations of the fires the scheduler timed: announced by the timer's call
    ahead of an instant, taken at the instant, released when a fire is untimed."""

    def __init__(
        self,
        dispatch: Dispatch,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        *,
        next_fire: Callable[[str], datetime | None],
        running: Callable[[], bool],
    ) -> None:
        self._dispatch = dispatch
        self._spawn = spawn  # the scheduler's: what it starts, it waits for at shutdown
        self._next_fire = next_fire  # the instant a task is timed for now
        self._running = running
        self._announced: list[tuple[str, datetime, datetime]] = []
        self._held: dict[str, Reservation] = {}

    def announce(self, task_name: str, scheduled_for: datetime, instant: datetime) -> None:
        """A fire's instant is near: reserve its row.  All fires announced in one turn
        of the loop are reserved in one write."""
        if not self._announced:
            asyncio.get_running_loop().call_soon(self._reserve)
        self._announced.append((task_name, scheduled_for, instant))

    def take(self, task_name: str, scheduled_for: datetime) -> Reservation | None:
        """The reservation of this fire, now used (a late wake may make it a catch-up
        run); None without one.  Another fire's reservation of the task is kept, to be
        released when the task's next fire is timed."""
        reservation = self._held.get(task_name)
        if reservation is None or reservation.scheduled_for != scheduled_for:
            return None
        del self._held[task_name]
        return reservation

    def release(self, task_name: str) -> None:
        """The task's next fire is off (for now): so is its reservation."""
        reservation = self._held.pop(task_name, None)
        if reservation is not None:
            self._spawn(self._discard(reservation))

    def close(self) -> None:
        """At shutdown: reserve nothing more, and release every reservation."""
        self._announced.clear()
        for task_name in list(self._held):
            self.release(task_name)

    def _reserve(self) -> None:
        # A fire untimed since it was announced is not reserved.
        fires = [f for f in self._announced if self._next_fire(f[0]) == f[2]]
        self._announced = []
        if not fires or not self._running():
            return
        rows = asyncio.ensure_future(self._dispatch.reserve(fires))
        rows.add_done_callback(_quietly)  # its error is met where the rows are used
        for task_name, scheduled_for, _ in fires:
            self._held[task_name] = Reservation(task_name, scheduled_for, rows)

    async def _discard(self, reservation: Reservation) -> None:
        """Delete the row of a fire that will not happen (if it was committed)."""
        run = await reservation.row()
        if run is None:
            return
        try:
            await self._dispatch.discard_reserved([run.id])
        except Exception as exc:  # the row is left pending; a restart settles it
            log.warning(
                "fire.reservation_left", task=reservation.task_name, run_id=run.id, error=str(exc)
            )


def _quietly(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
