"""A task's places under ``max_concurrent`` across every node sharing a PostgreSQL
database, held in the runs table itself.

A run about to start takes the lowest free ``slot`` number below the task's limit; the
partial unique index on (task_name, slot) over runs not yet ended makes two nodes that
pick the same number at once collide, and the loser looks again.  A run leaves the
index when it ends, however it ends (a crash taken over by a survivor included), so a
place is never leaked and there is nothing to release.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronwarden.model import Run, Status
from cronwarden.store.nodes import claimed_to_start, notify_nodes, wake_nodes
from cronwarden.store.resilience import outage_as_unavailable
from cronwarden.store.transactions import in_transaction

_runs = Run.__table__  # type: ignore[attr-defined]
FREED = "freed"  # NOTIFY payload "freed <task>": a place of that task may be free
_COLLISIONS = 5  # another node took the place we picked: look again, this many times


class FleetSlots:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def take(self, task_name: str, run_id: str, limit: int) -> bool:
        """Give the run a free place among the task's ``limit``; False: all are held."""
        held = sa.select(_runs.c.slot).where(_holding(task_name))

        async def seat(conn: AsyncConnection) -> bool:
            taken = set((await conn.execute(held)).scalars())
            free = next((n for n in range(limit) if n not in taken), None)
            if free is None:
                return False
            await conn.execute(sa.update(_runs).where(_runs.c.id == run_id).values(slot=free))
            return True

        for _ in range(_COLLISIONS):
            try:
                with outage_as_unavailable():
                    return await in_transaction(self.engine, seat)
            except IntegrityError:
                continue
        return False

    async def ask_oldest_to_stop(self, task_name: str) -> str | None:
        """overlap = terminate: ask the node carrying the task's oldest place holder to
        stop it (its end frees the place), unless a holder was asked already; returns
        the id of the run asked."""
        oldest = (
            sa.select(_runs.c.id)
            .where(_holding(task_name), _runs.c.stop_requested_at.is_(None))
            .order_by(_runs.c.created_at)
            .limit(1)
            .scalar_subquery()
        )
        already_asked = sa.select(_runs.c.id).where(
            _holding(task_name), _runs.c.stop_requested_at.is_not(None)
        )
        statement = (
            sa.update(_runs)
            .where(_runs.c.id == oldest, ~sa.exists(already_asked))
            .values(stop_requested_at=sa.func.statement_timestamp())
            .returning(_runs.c.id)
        )

        async def ask(conn: AsyncConnection) -> str | None:
            asked = (await conn.execute(statement)).scalar_one_or_none()
            if asked is not None:
                await conn.execute(wake_nodes(asked))
            return None if asked is None else str(asked)

        with outage_as_unavailable():
            return await in_transaction(self.engine, ask)

    async def announce_freed(self, task_name: str) -> None:
        """Wake the nodes whose runs wait for a place of the task; best effort, as
        they also look again every second."""
        with contextlib.suppress(SQLAlchemyError, OSError, TimeoutError):
            await notify_nodes(self.engine, f"{FREED} {task_name}")

    async def active_elsewhere(self, node: str, task_names: Collection[str]) -> dict[str, int]:
        """Runs of these tasks that other nodes hold, running or about to start (not
        retries waiting for their time), by task: overlap = skip refuses at admission
        on this count, before any place is taken."""
        query = (
            sa.select(_runs.c.task_name, sa.func.count())
            .where(
                _runs.c.task_name.in_(list(task_names)),
                _runs.c.node != node,
                sa.or_(_runs.c.status == Status.RUNNING, claimed_to_start(sa.func.now())),
            )
            .group_by(_runs.c.task_name)
        )
        with outage_as_unavailable():
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return {name: int(count) for name, count in rows}


def _holding(task_name: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        _runs.c.task_name == task_name, _runs.c.slot.is_not(None), _runs.c.status != Status.ENDED
    )
