"""Paused tasks: the one owner of the set.

A pause, whoever asks for it (the API, the CLI through the API, another node), takes
the same four steps here and nowhere else:

1. it is stored (``task_state.paused``), so it outlives a restart and every node
   sharing the database can read it;
2. the scheduler is told to stop (or start again) timing the task's fires; a resume
   never catches up, the fires of a pause were asked not to happen;
3. the other nodes are woken (a NOTIFY on PostgreSQL) to read it now rather than at
   their next poll;
4. ``task.paused`` / ``task.resumed`` is published (to the hub, from which the events
   log serves ``GET /api/events``).

A node learns the pauses made elsewhere through ``sync``, which the fleet calls at
each turn of its poll (about each second, sooner after a NOTIFY): the stored flags are
compared with this node's set, and each difference takes steps 2 and 4.  So every
node's event stream tells of a pause once, wherever it was made.  A task this node
does not define is left to the nodes that do (it is followed once a reload adds it).

Only a change is published: pausing a paused task stores the flag again (harmless)
and says nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Container, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

import structlog
from sqlalchemy.exc import SQLAlchemyError

from cronwarden.errors import StoreUnavailable

if TYPE_CHECKING:
    from cronwarden.model import TaskState

log = structlog.get_logger("cronwarden.pauses")

TaskChange = Literal["task.paused", "task.resumed"]
_DATABASE_ERRORS = (SQLAlchemyError, StoreUnavailable, OSError, TimeoutError)


class PauseRecords(Protocol):
    """Where the paused flags are kept (the store, or its in-memory double)."""

    async def task_states(self) -> Mapping[str, TaskState]: ...

    async def save_task_state(self, task_name: str, **values: Any) -> None: ...


class Timing(Protocol):
    """The scheduler: stops and starts timing a task's fires."""

    def follow_pause(self, task_name: str, *, paused: bool) -> None: ...


class Tasks(Protocol):
    """The current config (LiveConfig): ``task`` raises TaskNotFound for a name it
    does not define."""

    def task(self, name: str) -> object: ...

    @property
    def tasks(self) -> Container[str]: ...


class Fleet(Protocol):
    """The nodes sharing the database (store/nodes.NodeRegistry)."""

    shared: bool

    async def paused_tasks(self) -> set[str]: ...

    async def notify(self, payload: str = "") -> None: ...


class Pauses:
    """See the module docstring.  ``publish`` is told each change, with the task's
    name (``Hub.tasks.publish``); ``fleet`` is None, or not shared, for a lone node."""

    def __init__(
        self,
        records: PauseRecords,
        timing: Timing,
        live: Tasks,
        *,
        publish: Callable[[TaskChange, str], None],
        fleet: Fleet | None = None,
    ) -> None:
        self._records = records
        self._timing = timing
        self._live = live
        self._publish = publish
        self._fleet = fleet if fleet is not None and fleet.shared else None
        self._paused: set[str] = set()
        self._changes = 0  # changes made here: a sync that read before one stands down
        self._lock = asyncio.Lock()  # one pause or resume at a time: stored = applied

    # -- queries -------------------------------------------------------------------

    def is_paused(self, task_name: str) -> bool:
        return task_name in self._paused

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._paused)

    @property
    def count(self) -> int:
        return len(self._paused)

    # -- changes -------------------------------------------------------------------

    async def load(self) -> None:
        """At start-up, before the scheduler starts: the pauses stored by earlier lives
        and by the other nodes.  Nothing is published: nothing changed."""
        states = await self._records.task_states()
        for name, state in states.items():
            if state.paused and name not in self._paused:
                self._paused.add(name)
                self._timing.follow_pause(name, paused=True)

    async def pause(self, task_name: str) -> None:
        """Raises TaskNotFound for a task the config does not define, StoreUnavailable
        when the flag cannot be stored (then nothing changed)."""
        await self._set(task_name, paused=True)

    async def resume(self, task_name: str) -> None:
        """Fire the task's schedule again, from now: no catch-up of the pause."""
        await self._set(task_name, paused=False)

    async def _set(self, task_name: str, *, paused: bool) -> None:
        self._live.task(task_name)
        async with self._lock:
            await self._records.save_task_state(task_name, paused=paused)
            self._changes += 1
            self._apply(task_name, paused=paused, elsewhere=False)
        await self._announce()

    async def sync(self) -> None:
        """Follow the pauses and resumes stored by the other nodes (the fleet's poll).
        A database error is raised for the caller to log; the next turn tries again."""
        if self._fleet is None:
            return
        changes = self._changes
        stored = await self._fleet.paused_tasks()
        if changes != self._changes:
            return  # a change made here meanwhile: what was read may be older than it
        configured = self._live.tasks
        for name in sorted(stored ^ self._paused):
            if name in configured:
                self._apply(name, paused=name in stored, elsewhere=True)

    def _apply(self, task_name: str, *, paused: bool, elsewhere: bool) -> None:
        if paused == (task_name in self._paused):
            return
        if paused:
            self._paused.add(task_name)
        else:
            self._paused.discard(task_name)
        self._timing.follow_pause(task_name, paused=paused)
        kind: TaskChange = "task.paused" if paused else "task.resumed"
        log.info(kind, task=task_name, elsewhere=elsewhere)
        self._publish(kind, task_name)

    async def _announce(self) -> None:
        """Wake the other nodes; when the database is away, they read the flag at
        their next poll once it is back."""
        if self._fleet is None:
            return
        with contextlib.suppress(*_DATABASE_ERRORS):
            await self._fleet.notify("")
