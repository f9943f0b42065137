"""The places a run holds beside its task's slot (see ``gate``): one under
``[daemon] max_concurrent_runs`` on this host, and on a shared database this node's
lease (for a task that must not overlap) and one among its task's max_concurrent on
every node."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import structlog

from cronwarden.errors import StoreUnavailable
from cronwarden.ports import SharedPlaces
from cronwarden.runners.admission import Verdict
from cronwarden.runners.endings import skipped
from cronwarden.runners.gate import LookAgain, Notice, StoppedWaiting, stopped_while
from cronwarden.runners.host_limit import HostLimit
from cronwarden.runners.lifecycle import RunHandle
from cronwarden.runners.outcome import Outcome

log = structlog.get_logger("cronwarden.dispatch")

PLACE_POLL = 1.0  # seconds between looks for a place held on other nodes (NOTIFY is sooner)


class HostPlace:
    """A place under max_concurrent_runs (``HostLimit``: fair turns between tasks)."""

    waits_for = "a place under max_concurrent_runs"

    def __init__(self, limit: int) -> None:
        self.host = HostLimit(limit)

    def set_limit(self, limit: int) -> None:
        self.host.set_limit(limit)

    async def take(self, handle: RunHandle) -> Outcome | None:
        waiter = self.host.take(handle.task_name, handle.id)
        if waiter is None:
            return None
        log.info("run.waiting_for_host", task=handle.task_name, run_id=handle.id)
        if await stopped_while(handle, waiter):
            self.host.release(handle.id)
            raise StoppedWaiting(self.waits_for)
        return None

    def occupy(self, run_id: str) -> None:
        self.host.occupy(run_id)

    def give_back(self, handle: RunHandle) -> Notice | None:
        self.host.release(handle.id)
        return None


class LeasePlace:
    """On a shared database, a run of a task that must not overlap (``overlap`` other
    than allow) starts only while this node holds its lease: a node whose heartbeats do
    not land may be taken over, and a survivor then runs the task's next run.  While the
    lease is lost (``lost``), such runs wait here, pending; once a heartbeat lands again
    they go on (or, if the node was taken over, they were handed to the survivor and are
    given up here)."""

    waits_for = "this node's lease (its heartbeats do not reach the database)"

    def __init__(self) -> None:
        self._held = asyncio.Event()
        self._held.set()

    @property
    def held(self) -> bool:
        return self._held.is_set()

    def lost(self) -> None:
        self._held.clear()

    def regained(self) -> None:
        self._held.set()

    async def take(self, handle: RunHandle) -> Outcome | None:
        if handle.task.overlap == "allow" or self._held.is_set():
            return None
        log.info("run.waiting_for_lease", task=handle.task_name, run_id=handle.id)
        while not self._held.is_set():
            regained = asyncio.ensure_future(self._held.wait())
            try:
                if await stopped_while(handle, regained):
                    raise StoppedWaiting(self.waits_for)
            finally:
                regained.cancel()
        return None

    def occupy(self, run_id: str) -> None:
        """An adopted run was started under an earlier lease of this node."""

    def give_back(self, handle: RunHandle) -> Notice | None:
        return None


class SharedPlace:
    """On a shared database, a limited task's run also needs a place among the task's
    max_concurrent across every node (this node's own count is its task slots).  The
    places are rows of the database (store/slots.py); a run leaves them by ending."""

    waits_for = "a place held on other nodes"

    def __init__(self, places: SharedPlaces, node: str) -> None:
        self.places = places
        self.node = node
        self._held: set[str] = set()  # runs of this node holding a place
        self._looks = LookAgain()

    def changed(self) -> None:
        """Another node said a place of some task may be free: waiting runs look again."""
        self._looks.wake()

    async def active_elsewhere(self, task_names: Collection[str]) -> dict[str, int]:
        """Runs of these tasks other nodes hold (overlap = skip counts them)."""
        return await self.places.active_elsewhere(self.node, task_names)

    async def take(self, handle: RunHandle) -> Outcome | None:
        task = handle.task
        if task.overlap == "allow" or task.on_every_node:
            # An on_every_node task runs on every node: its max_concurrent, like its
            # overlap, holds per node (this node's task slots), not across them.
            return None
        waiting = False
        while True:
            ticket = self._looks.ticket()
            try:
                if await self.places.take(task.name, handle.id, task.max_concurrent):
                    self._held.add(handle.id)
                    return None
                if task.overlap == "skip":
                    return skipped(task, Verdict.SKIP, elsewhere=task.max_concurrent)
                if task.overlap == "terminate":
                    asked = await self.places.ask_oldest_to_stop(task.name)
                    if asked is not None:
                        log.info("run.terminating", task=task.name, run_id=asked, for_run=handle.id)
            except StoreUnavailable as exc:
                log.warning("run.place_unknown", task=task.name, run_id=handle.id, error=str(exc))
            if not waiting:
                log.info("run.waiting_for_other_nodes", task=task.name, run_id=handle.id)
                waiting = True
            await self._looks.wait(handle, ticket, PLACE_POLL, self.waits_for)

    def occupy(self, run_id: str) -> None:
        """An adopted run's row keeps the place it took; its end frees it."""

    def give_back(self, handle: RunHandle) -> Notice | None:
        if handle.id not in self._held:
            return None
        self._held.discard(handle.id)
        places, task_name = self.places, handle.task_name
        return lambda: places.announce_freed(task_name)
