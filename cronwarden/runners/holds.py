"""Named locks and pools as a place of the admission gate (see gate.py).

A task's ``locks`` (tasks sharing one never run at once) and its ``pool`` (at most
``[pools.NAME] size`` runs of the pool's tasks at once) are seats in the database
(store/holds.py), taken all at once before the run's other places, so a run never
holds one lock while it waits for another.  A run that cannot have them follows its
task's overlap policy: ``skip`` ends it skipped, naming who holds what it needed;
``queue`` (and ``allow``: a lock is a lock) waits, pending, served in the order the
runs of this node came; ``terminate`` is refused at load.  Waiting runs look again when
a run of this node gives seats back, when another node says so (NOTIFY), and every
second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from cronwarden.config import PoolConfig, TaskConfig
from cronwarden.errors import StoreUnavailable
from cronwarden.live_config import LiveConfig
from cronwarden.model import EndReason
from cronwarden.ports import Holder, Holds, hold_key
from cronwarden.runners.gate import LookAgain, Notice
from cronwarden.runners.lifecycle import RunHandle
from cronwarden.runners.outcome import Outcome

log = structlog.get_logger("cronwarden.dispatch")

LOOK_EVERY = 1.0  # seconds between looks for seats held elsewhere (a give-back is sooner)


def lock_key(name: str) -> str:
    return hold_key("lock", name)


def pool_key(name: str) -> str:
    return hold_key("pool", name)


def wants_of(task: TaskConfig, pools: dict[str, PoolConfig]) -> dict[str, int]:
    """The seats a run of ``task`` needs: hold name -> how many seats it has."""
    wants = {lock_key(name): 1 for name in task.locks}
    if task.pool is not None and task.pool in pools:
        wants[pool_key(task.pool)] = pools[task.pool].size
    return wants


@dataclass
class Waiter:
    """A run of this node waiting for its seats."""

    run_id: str
    task_name: str
    wants: tuple[str, ...]
    since: float = field(default_factory=time.time)


class HoldPlace:
    waits_for = "its locks or its pool's place"

    def __init__(
        self,
        holds: Holds,
        config: LiveConfig,
        on_waited: Callable[[str, float], None] | None = None,
    ) -> None:
        self.holds = holds
        self._config = config
        self._on_waited = on_waited  # hold name, seconds waited (the metrics)
        self._held: dict[str, tuple[str, ...]] = {}  # run -> the holds it took
        self._line: list[Waiter] = []  # oldest first
        self._looks = LookAgain()

    @property
    def waiting(self) -> list[Waiter]:
        return list(self._line)

    def held_here(self) -> dict[str, int]:
        """Seats held by this node's runs, by hold name."""
        counts: dict[str, int] = {}
        for names in self._held.values():
            for name in names:
                counts[name] = counts.get(name, 0) + 1
        return counts

    def changed(self) -> None:
        """Seats may be free (given back here, or on another node): look again."""
        self._looks.wake()

    async def take(self, handle: RunHandle) -> Outcome | None:
        wants = wants_of(handle.task, self._config.current.pools)
        if not wants:
            return None
        waiter = Waiter(handle.id, handle.task_name, tuple(wants))
        self._line.append(waiter)
        try:
            return await self._take(handle, wants, waiter)
        finally:
            self._line.remove(waiter)
            self.changed()  # the next in line may look now

    async def _take(
        self, handle: RunHandle, wants: dict[str, int], waiter: Waiter
    ) -> Outcome | None:
        logged = False
        while True:
            ticket = self._looks.ticket()
            if self._first_in_line(waiter):
                try:
                    holders = await self.holds.take(handle.id, wants)
                except StoreUnavailable as exc:
                    log.warning(
                        "run.holds_unknown", task=handle.task_name, run_id=handle.id, error=str(exc)
                    )
                else:
                    if holders is None:
                        self._taken(handle, wants, waiter)
                        return None
                    if handle.task.overlap == "skip" and holders:
                        return Outcome(EndReason.SKIPPED, error=f"skipped: {_held_by(holders)}")
                    if not logged:
                        log.info(
                            "run.waiting_for_holds",
                            task=handle.task_name,
                            run_id=handle.id,
                            held_by=_held_by(holders),
                        )
                        logged = True
            await self._looks.wait(handle, ticket, LOOK_EVERY, self.waits_for)

    def _first_in_line(self, waiter: Waiter) -> bool:
        """Runs of this node are served in the order they came: a run looks only once
        no earlier run waits for any of the same holds."""
        for earlier in self._line:
            if earlier is waiter:
                return True
            if set(earlier.wants) & set(waiter.wants):
                return False
        return True

    def _taken(self, handle: RunHandle, wants: dict[str, int], waiter: Waiter) -> None:
        self._held[handle.id] = tuple(wants)
        waited = time.time() - waiter.since
        if self._on_waited is not None:
            for name in wants:
                self._on_waited(name, waited)

    def occupy(self, run_id: str) -> None:
        """An adopted run's seats are rows that count while it runs."""

    def give_back(self, handle: RunHandle) -> Notice | None:
        names = self._held.pop(handle.id, None)
        if names is None:
            return None
        self.changed()
        holds = self.holds
        return lambda: holds.announce_freed(names)


def _held_by(holders: list[Holder]) -> str:
    what = ", ".join(
        f"{kind} {name} is held by run {h.run_id} of task {h.task_name} on node {h.node}"
        for h in holders
        for kind, _, name in [h.name.partition(":")]
    )
    return what or "its locks or pool are held by another run"
