"""The one admission gate: what a run must hold before its process starts.

Two steps, one object, every start path (fire, trigger, retry, a queued or recovered
run) goes through both:

1. ``admit``: one of its task's slots (max_concurrent and overlap: ``TaskSlots``,
   synchronous, so nothing slips in between "is a slot free?" and "take it").  The
   verdict says start, queue, skip or refuse; ``leave`` hands a freed slot straight to
   the next run in line.
2. ``enter``: every other place, in order, each a ``Place``: the seats of the task's
   named locks and pool (``holds.HoldPlace``), a place under
   ``[daemon] max_concurrent_runs`` (``places.HostPlace``), then on a shared database
   a place among the task's max_concurrent on every node (``places.SharedPlace``).  A
   kind of place only has to say how a run takes it (waiting, stoppable), how a
   running run that was adopted holds it, and how it is given back; a place kept in
   the database wakes its waiters with ``LookAgain``.

The run's lifecycle state says where it is (PLACING while in ``enter``); each place
keeps only its own bookkeeping of who holds it, as ``TaskSlots`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cronwarden.config import TaskConfig
from cronwarden.live_config import LiveConfig
from cronwarden.runners.admission import Eviction, Policy, TaskSlots, Verdict
from cronwarden.runners.lifecycle import RunHandle
from cronwarden.runners.outcome import Outcome

Notice = Callable[[], Awaitable[None]]


class StoppedWaiting(Exception):
    """The run was stopped while it waited for a place (``waits_for`` names it)."""

    def __init__(self, waits_for: str) -> None:
        super().__init__(waits_for)
        self.waits_for = waits_for


class Place(Protocol):
    """One kind of place a run must hold before it starts."""

    waits_for: str  # what a run stopped while waiting was waiting for, in words

    async def take(self, handle: RunHandle) -> Outcome | None:
        """Wait until the run holds a place: None then, or how the run ends without
        starting (a refusal).  Raises StoppedWaiting when the run is stopped first."""
        ...

    def occupy(self, run_id: str) -> None:
        """An adopted run, running already, holds a place whatever the limit."""
        ...

    def give_back(self, handle: RunHandle) -> Notice | None:
        """Give the run's place back (or its place in line) if it has one; returns
        what tells others waiting elsewhere, awaited once the slot has been handed on."""
        ...


@dataclass(frozen=True)
class Left:
    """What a run leaving the gate freed: runs now holding its task's slot, and the
    notices for waiters on other nodes."""

    granted: list[str]
    notices: list[Notice]

    async def tell(self) -> None:
        for notice in self.notices:
            await notice()


class Gate:
    def __init__(
        self,
        config: LiveConfig,
        places: Sequence[Place] = (),
        elsewhere: Callable[[Collection[str]], Awaitable[dict[str, int]]] | None = None,
    ) -> None:
        self._config = config
        self._places = list(places)
        self._elsewhere = elsewhere  # active runs on other nodes (shared database)
        self._slots: dict[str, TaskSlots] = {}

    # -- step 1: the task's slots ---------------------------------------------------

    async def elsewhere(self, task_names: Collection[str]) -> dict[str, int]:
        """On a shared database, the runs other nodes hold of the tasks whose overlap
        is skip (one query for a batch of fires; none when no such task is due).  An
        on_every_node task's overlap holds per node: the others' runs are theirs."""
        if self._elsewhere is None:
            return {}
        tasks = self._config.tasks
        skipping = {
            n
            for n in task_names
            if n in tasks and tasks[n].overlap == "skip" and not tasks[n].on_every_node
        }
        return await self._elsewhere(skipping) if skipping else {}

    def admit(self, run_id: str, task_name: str, elsewhere: int = 0) -> Verdict:
        """Take a slot of the task (START), join its line (QUEUE), or be turned away
        (SKIP, REFUSE: nothing is held then)."""
        verdict = self._of(task_name).acquire(run_id, self._policy(task_name), elsewhere)
        if verdict in (Verdict.SKIP, Verdict.REFUSE):
            self._forget_idle(task_name)
        return verdict

    def seat(self, run_id: str, task_name: str) -> None:
        """A run adopted from a previous life holds a slot and every place."""
        self._of(task_name).seat(run_id)
        for place in self._places:
            place.occupy(run_id)

    def holds_slot(self, run_id: str, task_name: str) -> bool:
        """Whether the run holds one of its task's slots (not: waits in line)."""
        slots = self._slots.get(task_name)
        return slots is not None and run_id in slots.holders

    def evict_for(self, run_id: str, task_name: str) -> Eviction:
        """overlap = terminate: what must give way to the newcomer ``run_id``."""
        return self._of(task_name).evict_for(run_id)

    def mark_stopping(self, run_id: str, task_name: str) -> None:
        slots = self._slots.get(task_name)
        if slots is not None:
            slots.mark_stopping(run_id)

    def regrant(self) -> list[str]:
        """After a reload: tasks whose limits rose hand free slots to waiting runs."""
        granted: list[str] = []
        for name, slots in list(self._slots.items()):
            if name in self._config.tasks:
                granted += slots.grant(self._policy(name))
        return granted

    def counts(self, task_name: str) -> tuple[int, int]:
        """(runs holding a slot, runs waiting in line) for one task."""
        slots = self._slots.get(task_name)
        return (0, 0) if slots is None else (len(slots.holders), len(slots.line))

    def clear(self) -> None:
        """Forget every task's slots (the runs were let go, see Dispatcher.detach)."""
        self._slots.clear()

    # -- step 2: every other place ------------------------------------------------------

    async def enter(self, handle: RunHandle) -> Outcome | None:
        """Wait for every place in turn: None once the run holds them all, else how it
        ends without starting.  Raises StoppedWaiting."""
        for place in self._places:
            refused = await place.take(handle)
            if refused is not None:
                return refused
        return None

    def leave(self, handle: RunHandle) -> Left:
        """Give back everything the run holds, or its place in any line; the slot goes
        straight to the next run in line (``granted``, to be started by the caller)."""
        notices = [n for p in reversed(self._places) if (n := p.give_back(handle)) is not None]
        slots = self._slots.get(handle.task_name)
        if slots is None:
            return Left([], notices)
        granted = slots.release(handle.id, self._policy(handle.task_name, handle.task))
        self._forget_idle(handle.task_name)
        return Left(granted, notices)

    # -- helpers ----------------------------------------------------------------------

    def _policy(self, task_name: str, fallback: TaskConfig | None = None) -> Policy:
        task = self._config.tasks.get(task_name, fallback)
        if task is None:
            return Policy("allow", 1, 0)
        return Policy(task.overlap, task.max_concurrent, task.queue_max)

    def _of(self, task_name: str) -> TaskSlots:
        return self._slots.setdefault(task_name, TaskSlots())

    def _forget_idle(self, task_name: str) -> None:
        slots = self._slots.get(task_name)
        if slots is not None and slots.idle:
            del self._slots[task_name]


class LookAgain:
    """Tells the runs waiting for a place held in the database (by a run of this node
    or of another) that it may be free.  A waiter takes its ``ticket`` before it looks:
    a give-back while its look still reads the database wakes it at once.  Waiting on
    whatever event was current after the look lost that give-back, and the run slept
    its whole poll (two per-second tasks sharing a lock fell seconds behind)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ticket(self) -> asyncio.Event:
        return self._event

    def wake(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    @staticmethod
    async def wait(
        handle: RunHandle, ticket: asyncio.Event, at_most: float, waits_for: str
    ) -> None:
        """Until the ticket's wake-up or ``at_most`` seconds; raises StoppedWaiting if
        the run is stopped meanwhile."""
        woken = asyncio.ensure_future(ticket.wait())
        try:
            if await stopped_while(handle, woken, at_most):
                raise StoppedWaiting(waits_for)
        finally:
            woken.cancel()


async def stopped_while(
    handle: RunHandle, waiter: asyncio.Future[Any], at_most: float | None = None
) -> bool:
    """Wait for ``waiter`` (at most ``at_most`` seconds) unless the run is stopped
    first; True if it was.  The waiter is the caller's to settle."""
    stopped = handle.control.stop.settled()
    await asyncio.wait({waiter, stopped}, timeout=at_most, return_when=asyncio.FIRST_COMPLETED)
    return handle.control.stop.is_set()
