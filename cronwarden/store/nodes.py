"""The nodes table: each daemon's heartbeat, and what the others can read of it.

Heartbeats are stamped with the database's clock on PostgreSQL, where several hosts
share the table, so that a lapsed lease is judged on one clock and not on each host's
own.  SQLite is one host by construction: its clock is this process's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronwarden.model import Node, Run, Status, utcnow
from cronwarden.store.engine import upsert_insert

_nodes = Node.__table__  # type: ignore[attr-defined]
_runs = Run.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Heartbeat:
    """What a node says of itself each beat."""

    name: str
    started_at: datetime
    version: str
    pid: int
    api_url: str | None
    config_hash: str


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


class NodeRegistry:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._shared = engine.dialect.name == "postgresql"

    def _now(self) -> sa.ColumnElement[datetime] | datetime:
        return sa.func.statement_timestamp() if self._shared else utcnow()

    async def beat(self, beat: Heartbeat) -> None:
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
            .values(name=beat.name, **values)
            .on_conflict_do_update(index_elements=[_nodes.c.name], set_=values)
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)

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
            now = (
                (await conn.execute(sa.select(sa.func.statement_timestamp()))).scalar_one()
                if self._shared
                else utcnow()
            )
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
            )
            for row in rows
        ]
