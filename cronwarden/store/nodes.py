"""The nodes table: each daemon's heartbeat and epoch, what the others read of it, and
the takeover of a node whose lease lapsed.

Heartbeats are stamped with the database's clock on PostgreSQL, where several hosts
share the table, so that a lapsed lease is judged on one clock and not on each host's
own.  SQLite is one host by construction: its clock is this process's.

Exactly one survivor takes over a dead node: it locks the node's row (``FOR UPDATE
SKIP LOCKED``: a second survivor skips it rather than waits) and, in the same
transaction, raises the node's epoch and ends its running runs as crashed.  A node
whose epoch was raised finds out at its next heartbeat, which only lands for the epoch
it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronwarden.model import EndReason, Node, Run, Status, TaskState, utcnow
from cronwarden.reservations import instant_came_rows
from cronwarden.store.engine import is_shared, upsert_insert
from cronwarden.store.transactions import in_transaction

_nodes = Node.__table__  # type: ignore[attr-defined]
_task_state = TaskState.__table__  # type: ignore[attr-defined]
CHANNEL = "cronwarden"  # NOTIFY channel: a stop, a pause or a reload was asked for
_runs = Run.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Heartbeat:
    """What a node says of itself each beat."""

    name: str
    started_at: datetime
    version: str
    pid: int
    api_url: str | None
    config_hash: str | None  # None until hashed (the first beat)


@dataclass(frozen=True)
class NodeSeen:
    """A node as the table shows it, with its silence measured on the database clock."""

    name: str
    started_at: datetime
    heartbeat_at: datetime
    version: str
    pid: int
    api_url: str | None
    config_hash: str | None
    running_runs: int
    silent_for: timedelta
    taken_over_by: str | None  # set when a survivor took over its runs since its last beat

    def alive(self, lease: timedelta) -> bool:
        return self.silent_for <= lease


@dataclass(frozen=True)
class Takeover:
    """What a survivor took over from a dead node: runs it ended as crashed, and
    pending runs (retries waiting for their time) now carried by the survivor."""

    node: str
    crashed: list[Run]
    pending: list[Run]


class NodeRegistry:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.shared = is_shared(engine)

    def _now(self) -> Any:
        return sa.func.statement_timestamp() if self.shared else utcnow()

    async def beat(self, beat: Heartbeat, epoch: int | None) -> int | None:
        """Stamp this node's heartbeat; returns its epoch.  With ``epoch`` (every beat
        after the first) the beat lands only if the epoch is unchanged: None means a
        survivor took this node over meanwhile."""
        values = {
            "started_at": beat.started_at,
            "heartbeat_at": self._now(),
            "version": beat.version,
            "pid": beat.pid,
            "api_url": beat.api_url,
            "config_hash": beat.config_hash,
        }
        statement = (
            upsert_insert(self.engine, _nodes)
            .values(name=beat.name, epoch=0, **values)
            .on_conflict_do_update(
                index_elements=[_nodes.c.name],
                set_=values,
                where=None if epoch is None else _nodes.c.epoch == epoch,
            )
            .returning(_nodes.c.epoch)
        )

        async def stamp(conn: AsyncConnection) -> int | None:
            landed = (await conn.execute(statement)).scalar_one_or_none()
            return None if landed is None else int(landed)

        return await in_transaction(self.engine, stamp)

    async def seen(self) -> list[NodeSeen]:
        running = (
            sa.select(_runs.c.node, sa.func.count().label("n"))
            .where(_runs.c.status == Status.RUNNING)
            .group_by(_runs.c.node)
            .subquery()
        )
        query = (
            sa.select(_nodes, sa.func.coalesce(running.c.n, 0))
            .outerjoin(running, running.c.node == _nodes.c.name)
            .order_by(_nodes.c.name)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            now = await self._clock(conn)
        return [
            NodeSeen(
                name=row.name,
                started_at=row.started_at,
                heartbeat_at=row.heartbeat_at,
                version=row.version,
                pid=row.pid,
                api_url=row.api_url,
                config_hash=row.config_hash,
                running_runs=int(row[-1]),
                silent_for=max(now - row.heartbeat_at, timedelta(0)),
                taken_over_by=row.taken_over_by
                if row.taken_over_at is not None and row.taken_over_at >= row.heartbeat_at
                else None,
            )
            for row in rows
        ]

    async def _clock(self, conn: AsyncConnection) -> datetime:
        if not self.shared:
            return utcnow()
        return (await conn.execute(sa.select(sa.func.statement_timestamp()))).scalar_one()  # type: ignore[no-any-return]

    async def lapsed(self, me: str, lease: timedelta) -> list[str]:
        """Nodes silent for longer than ``lease`` and not yet taken over."""
        query = sa.select(_nodes.c.name).where(
            _nodes.c.name != me,
            _nodes.c.heartbeat_at < self._now() - lease,
            _not_taken_over(),
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def take_over(
        self, dead: str, me: str, lease: timedelta, why: str, not_here: Sequence[str] = ()
    ) -> Takeover | None:
        """Declare ``dead`` dead and take its runs, unless it beat meanwhile or another
        survivor holds it; returns what was taken (None: nothing was done).  Waiting
        retries of the tasks ``not_here`` (whose `nodes` do not match ``me``) stay the
        dead node's, as do those of its own fires (on_every_node)."""

        async def take(conn: AsyncConnection) -> Takeover | None:
            now = await self._claim_dead(conn, dead, me, lease)
            if now is None:
                return None
            return await _take_runs(conn, dead, me, now, why, not_here)

        return await in_transaction(self.engine, take)

    async def _claim_dead(
        self, conn: AsyncConnection, dead: str, me: str, lease: timedelta
    ) -> datetime | None:
        """Lock ``dead``'s row and mark it taken over by ``me``, unless it beat within
        ``lease`` or another survivor holds it; the database's time, None if not."""
        locked = (
            await conn.execute(
                sa.select(_nodes.c.name)
                .where(
                    _nodes.c.name == dead,
                    _nodes.c.heartbeat_at < self._now() - lease,
                    _not_taken_over(),
                )
                .with_for_update(skip_locked=True)
            )
        ).scalar_one_or_none()
        if locked is None:
            return None
        now = await self._clock(conn)
        await conn.execute(
            sa.update(_nodes)
            .where(_nodes.c.name == dead)
            .values(epoch=_nodes.c.epoch + 1, taken_over_at=now, taken_over_by=me)
        )
        return now

    async def taken_over_runs(self, me: str) -> list[Run]:
        """The runs a survivor ended at the latest takeover of this node (their
        processes may still be alive if only the daemon died)."""
        if not self.shared:
            return []
        latest = sa.select(_nodes.c.taken_over_at).where(_nodes.c.name == me).scalar_subquery()
        query = sa.select(*_runs.c).where(
            _runs.c.node == me,
            _runs.c.end_reason == EndReason.CRASHED,
            _runs.c.end_at == latest,
            _runs.c.pid.is_not(None),
        )
        async with self.engine.connect() as conn:
            return [_run_of(row) for row in (await conn.execute(query)).mappings()]

    async def stop_requested(self, me: str) -> list[str]:
        """Runs this node carries that another node was asked to stop."""
        query = sa.select(_runs.c.id).where(
            # IN rather than != 'ended': the status index serves it, every second
            _runs.c.status.in_([Status.PENDING, Status.RUNNING]),
            _runs.c.node == me,
            _runs.c.stop_requested_at.is_not(None),
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def request_stop(self, run_id: str) -> bool:
        """Ask the node carrying a run to stop it (False: it has ended meanwhile)."""
        statement = (
            sa.update(_runs)
            .where(_runs.c.id == run_id, _runs.c.status != Status.ENDED)
            .values(stop_requested_at=self._now())
        )

        async def ask(conn: AsyncConnection) -> bool:
            asked = bool((await conn.execute(statement)).rowcount)
            if asked and self.shared:  # delivered on commit
                await conn.execute(wake_nodes(run_id))
            return asked

        return await in_transaction(self.engine, ask)

    async def lost_among(self, me: str, run_ids: list[str]) -> list[str]:
        """Which of these runs are not this node's any more: ended (by a survivor that
        took it over) or moved to another node."""
        if not run_ids:
            return []
        query = sa.select(_runs.c.id).where(
            _runs.c.id.in_(run_ids), sa.or_(_runs.c.status == Status.ENDED, _runs.c.node != me)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def api_url_of(self, node: str) -> str | None:
        query = sa.select(_nodes.c.api_url).where(_nodes.c.name == node)
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).scalar_one_or_none()

    async def paused_tasks(self) -> set[str]:
        query = sa.select(_task_state.c.task_name).where(_task_state.c.paused)
        async with self.engine.connect() as conn:
            return set((await conn.execute(query)).scalars())

    async def ask_reload(self, me: str) -> None:
        """Ask every other node to re-read its config file: a count on each one's row
        (found at its next look even if it missed the NOTIFY), and a NOTIFY so that
        the listening ones look at once."""

        async def ask(conn: AsyncConnection) -> None:
            await conn.execute(
                sa.update(_nodes)
                .where(_nodes.c.name != me)
                .values(reloads_asked=_nodes.c.reloads_asked + 1)
            )
            await conn.execute(wake_nodes(""))

        await in_transaction(self.engine, ask)

    async def reloads_asked(self, me: str) -> int:
        """How many reloads other nodes have asked of this one, ever (0 before its row
        exists)."""
        query = sa.select(_nodes.c.reloads_asked).where(_nodes.c.name == me)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one_or_none() or 0)

    async def notify(self, payload: str = "") -> None:
        """Wake the other nodes (they LISTEN on CHANNEL)."""
        await notify_nodes(self.engine, payload)


def wake_nodes(payload: str) -> sa.Select[Any]:
    """The NOTIFY that wakes the other nodes (they LISTEN on CHANNEL); delivered when
    the transaction that runs it commits."""
    return sa.select(sa.func.pg_notify(CHANNEL, payload))


async def notify_nodes(engine: AsyncEngine, payload: str) -> None:
    """``wake_nodes`` in a transaction of its own."""
    await in_transaction(engine, lambda conn: conn.execute(wake_nodes(payload)))


async def _take_runs(
    conn: AsyncConnection, dead: str, me: str, now: datetime, why: str, not_here: Sequence[str]
) -> Takeover:
    """``dead``'s running and claimed runs ended as crashed; its waiting retries moved
    to ``me``."""
    crashed = await conn.execute(
        sa.update(_runs)
        .where(
            _runs.c.node == dead,
            sa.or_(_runs.c.status == Status.RUNNING, claimed_to_start(now)),
        )
        .values(
            status=Status.ENDED,
            end_reason=EndReason.CRASHED,
            end_at=now,
            duration_ms=sa.cast(
                sa.func.extract("epoch", now - _runs.c.start_at) * 1000, sa.BigInteger
            ),
            error=why,
        )
        .returning(*_runs.c)
    )
    crashed_runs = [_run_of(row) for row in crashed.mappings()]
    # Its waiting retries move here, except those of its own fires
    # (on_every_node), which wait for it to come back (cronwarden/placement.py).
    pending = await conn.execute(
        sa.update(_runs)
        .where(
            _runs.c.node == dead,
            _runs.c.status == Status.PENDING,
            _runs.c.fire_node != dead,
            _runs.c.task_name.not_in(list(not_here)),
        )
        .values(node=me)
        .returning(*_runs.c)
    )
    pending_runs = [_run_of(row) for row in pending.mappings()]
    return Takeover(dead, crashed_runs, pending_runs)


def claimed_to_start(now: Any) -> sa.ColumnElement[bool]:
    """Pending runs about to start: claimed, queued, or a reservation whose instant
    has come (not a retry waiting for its time, nor a reservation ahead)."""
    return sa.or_(
        sa.and_(_runs.c.status == Status.PENDING, _runs.c.not_before.is_(None)),
        instant_came_rows(now),
    )


def _run_of(row: Any) -> Run:
    values = dict(row)
    for name in ("scheduled_for", "created_at", "start_at", "end_at", "not_before"):
        value = values.get(name)
        if isinstance(value, datetime) and value.tzinfo is None:
            values[name] = value.replace(tzinfo=utcnow().tzinfo)
    return Run(**values)


def _not_taken_over() -> sa.ColumnElement[bool]:
    """Not taken over since its last beat (a node that came back beats again)."""
    return sa.or_(_nodes.c.taken_over_at.is_(None), _nodes.c.taken_over_at < _nodes.c.heartbeat_at)
