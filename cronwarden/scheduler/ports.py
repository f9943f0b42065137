"""What the scheduler needs of the rest of cronwarden, as protocols: it times fires and
hands them on; whoever starts runs (the dispatcher, or a test double) implements
``Dispatch``.  The scheduler imports no runner and no store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from cronwarden.model import Trigger
from cronwarden.run_record import RunRecord

# (task, nominal fire time, how it was triggered)
Fire = tuple[str, datetime, Trigger]


class Dispatch(Protocol):
    def is_configured(self, task_name: str) -> bool:
        """Whether the current config has a task of that name."""
        ...

    async def prepare(self, task_names: Sequence[str]) -> None:
        """Work out ahead, soonest first and sharing the loop, what the first fire of
        each task would work out at its instant (its definition's hash)."""
        ...

    async def reserve(
        self, fires: Sequence[tuple[str, datetime, datetime]]
    ) -> dict[str, RunRecord | None]:
        """Commit the reservations of fires (task, nominal fire time, instant; see
        cronwarden/reservations.py); per task, the run reserved, or None when another
        node reserved it.  Raises ShuttingDown, StoreUnavailable."""
        ...

    async def fire_many(
        self,
        fires: Sequence[Fire],
        reserved: Mapping[tuple[str, datetime], RunRecord | None] | None = None,
    ) -> list[RunRecord]:
        """Admit and claim fires due together (one write), then start them; returns the
        runs this node claimed.  ``reserved``: the rows ``reserve`` committed (None:
        another node's).  Raises ShuttingDown, StoreUnavailable (nothing claimed)."""
        ...

    async def record_missed(
        self, task_name: str, fires: list[datetime], *, more: int, why: str
    ) -> None:
        """Record fires that did not run as missed runs (waits out an outage)."""
        ...

    async def discard_reserved(self, run_ids: Sequence[str]) -> None:
        """Delete the rows of reserved fires that will not happen (an empty list is an
        empty write: it lands once the store takes writes again).  Raises
        StoreUnavailable."""
        ...
