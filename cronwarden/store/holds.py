"""Named locks and pools in the database, for one daemon or every node sharing it.

A hold is a row (name, seat) -> run: a lock (``lock:NAME``) has one seat, a pool
(``pool:NAME``) ``size``.  A hold counts while its run has not ended: a run's end frees
its seats, however it ends (a crash taken over by a survivor included), so nothing has
to be released and nothing leaks.  A run takes every seat it needs in one transaction,
all or none (two runs each holding what the other waits for cannot happen).  A seat
whose row names an ended run is taken by replacing that row, under a condition that
two takers cannot both meet: on PostgreSQL the second one's upsert finds the row taken
and changes nothing, and it looks again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronwarden.model import Hold, Run, Status, utcnow
from cronwarden.ports import Holder
from cronwarden.store.engine import dialect_insert
from cronwarden.store.nodes import notify_nodes
from cronwarden.store.resilience import outage_as_unavailable
from cronwarden.store.transactions import in_transaction

_holds = Hold.__table__  # type: ignore[attr-defined]
_runs = Run.__table__  # type: ignore[attr-defined]
FREED_HOLDS = "holds-freed"  # NOTIFY payload "holds-freed <name> ...": seats may be free
_COLLISIONS = 5  # another node took the seat we picked: look again, this many times

# A hold counts while its run has not ended (a row whose run is gone counts no more).
# Not a correlated EXISTS: inside an upsert nothing correlates, and it would ask
# whether any hold at all counts.  The runs not ended are few, and indexed by status.
_COUNTING = _holds.c.run_id.in_(sa.select(_runs.c.id).where(_runs.c.status != Status.ENDED))


class _Collided(Exception):
    """Another taker won a seat this one chose: its transaction rolls back, and it
    looks again."""


class SqlHolds:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._shared = engine.dialect.name == "postgresql"

    async def take(self, run_id: str, wants: Mapping[str, int]) -> list[Holder] | None:
        """Every seat ``wants`` asks for (hold name -> its seats), all or none: None
        once the run holds them; else who holds the first one that is full (none named
        when other takers kept winning the same seats: look again)."""

        async def seat(conn: AsyncConnection) -> list[Holder] | None:
            busy = await _busy_seats(conn, wants)
            chosen: dict[str, int] = {}
            for name, seats in wants.items():
                free = next((n for n in range(seats) if n not in busy.get(name, ())), None)
                if free is None:
                    return await _holders(conn, [name])
                chosen[name] = free
            if await self._seat(conn, run_id, chosen):
                return None
            raise _Collided  # rolls back what was seated

        for _ in range(_COLLISIONS):
            try:
                with outage_as_unavailable():
                    return await in_transaction(self.engine, seat)
            except _Collided:
                continue
        return await self.holders(list(wants)[:1])

    async def holders(self, names: Collection[str] | None = None) -> list[Holder]:
        """The holds that count (their run not ended), of ``names`` or of all."""
        with outage_as_unavailable():
            async with self.engine.connect() as conn:
                return await _holders(conn, names)

    async def announce_freed(self, names: Collection[str]) -> None:
        """Wake the nodes whose runs wait for these holds; best effort, as they also
        look again every second."""
        if not self._shared or not names:
            return
        with contextlib.suppress(SQLAlchemyError, OSError, TimeoutError):
            await notify_nodes(self.engine, " ".join([FREED_HOLDS, *sorted(names)]))

    async def _seat(self, conn: AsyncConnection, run_id: str, chosen: Mapping[str, int]) -> bool:
        """Write the run into each chosen seat, replacing only a row whose run ended;
        False if another taker got one first."""
        dialect = "postgresql" if self._shared else "sqlite"
        now = utcnow()
        for name, seat in chosen.items():
            statement = dialect_insert(dialect, _holds).values(
                name=name, seat=seat, run_id=run_id, taken_at=now
            )
            statement = statement.on_conflict_do_update(
                index_elements=[_holds.c.name, _holds.c.seat],
                set_={"run_id": run_id, "taken_at": now},
                where=~_COUNTING,
            )
            try:
                result = await conn.execute(statement)
            except IntegrityError:
                return False
            if result.rowcount != 1:
                return False
        return True


async def _busy_seats(conn: AsyncConnection, wants: Mapping[str, int]) -> dict[str, set[int]]:
    rows = await conn.execute(
        sa.select(_holds.c.name, _holds.c.seat).where(_holds.c.name.in_(list(wants)), _COUNTING)
    )
    busy: dict[str, set[int]] = {}
    for name, seat in rows:
        busy.setdefault(name, set()).add(seat)
    return busy


async def _holders(conn: AsyncConnection, names: Collection[str] | None) -> list[Holder]:
    query = (
        sa.select(
            _holds.c.name, _holds.c.run_id, _runs.c.task_name, _runs.c.node, _holds.c.taken_at
        )
        .join(_runs, _runs.c.id == _holds.c.run_id)
        .where(_runs.c.status != Status.ENDED)
        .order_by(_holds.c.name, _holds.c.seat)
    )
    if names is not None:
        query = query.where(_holds.c.name.in_(list(names)))
    return [Holder(*row) for row in await conn.execute(query)]
