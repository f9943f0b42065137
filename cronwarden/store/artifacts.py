"""Run artifact listings in the database (table ``artifacts``, one row per entry).

Why a table and not a JSON column on runs: keep_artifacts_size adds up a task's kept
bytes run by run at each end that kept something, which is one indexed aggregate over
the task's rows here (a JSON column would have every listing of the task read and
parsed); a download finds its one row by (run_id, name); and run lists, the hottest
reads, do not carry listings they never show.  Rows go with their run (retention
deletes both, store/pruning.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronwarden.artifacts.stock import Entry
from cronwarden.model import Artifact, Run
from cronwarden.store.resilience import outage_as_unavailable
from cronwarden.store.transactions import in_transaction

_artifacts = Artifact.__table__  # type: ignore[attr-defined]
_runs = Run.__table__  # type: ignore[attr-defined]
_ENTRY = (_artifacts.c.name, _artifacts.c.size, _artifacts.c.sha256, _artifacts.c.dropped)
_BATCH = 1000  # rows per INSERT (a listing may hold 10,000)


class SqlArtifacts:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def record(self, run_id: str, task_name: str, entries: Sequence[Entry]) -> None:
        """A run's listing, replacing any taken before (a daemon that crashed between
        taking stock and recording the run's end takes stock again)."""
        rows = [
            {
                "run_id": run_id,
                "n": n,
                "name": e.name,
                "task_name": task_name,
                "size": e.size,
                "sha256": e.sha256,
                "dropped": e.dropped,
            }
            for n, e in enumerate(entries)
        ]

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(_artifacts.delete().where(_artifacts.c.run_id == run_id))
            for start in range(0, len(rows), _BATCH):
                await conn.execute(_artifacts.insert(), rows[start : start + _BATCH])

        with outage_as_unavailable():
            await in_transaction(self.engine, write)

    async def listing(self, run_id: str) -> list[Entry]:
        """A run's entries in listing order (none: it left nothing, or has not ended)."""
        query = (
            sa.select(
                _artifacts.c.name, _artifacts.c.size, _artifacts.c.sha256, _artifacts.c.dropped
            )
            .where(_artifacts.c.run_id == run_id)
            .order_by(_artifacts.c.n)
        )
        with outage_as_unavailable():
            async with self.engine.connect() as conn:
                return [Entry(*row) for row in await conn.execute(query)]

    async def find(self, run_id: str, name: str) -> Entry | None:
        query = sa.select(*_ENTRY).where(_artifacts.c.run_id == run_id, _artifacts.c.name == name)
        with outage_as_unavailable():
            async with self.engine.connect() as conn:
                row = (await conn.execute(query)).first()
        return None if row is None else Entry(*row)

    async def kept_sizes(self, task_name: str, node: str) -> list[tuple[str, int]]:
        """(run id, bytes kept) of each run of the task that keeps artifacts on ``node``
        (its disk holds them), newest first."""
        total = sa.func.sum(_artifacts.c.size)
        query = (
            sa.select(_artifacts.c.run_id, total)
            .join(_runs, _runs.c.id == _artifacts.c.run_id)
            .where(
                _artifacts.c.task_name == task_name,
                _artifacts.c.dropped.is_(None),
                _runs.c.node == node,
            )
            .group_by(_artifacts.c.run_id, _runs.c.created_at)
            .order_by(_runs.c.created_at.desc(), _artifacts.c.run_id.desc())
        )
        with outage_as_unavailable():
            async with self.engine.connect() as conn:
                return [(run_id, int(size)) for run_id, size in await conn.execute(query)]

    async def mark_removed(self, run_ids: Sequence[str], why: str) -> None:
        """The kept entries of these runs were removed (or are about to be): dropped."""
        statement = (
            _artifacts.update()
            .where(_artifacts.c.run_id.in_(run_ids), _artifacts.c.dropped.is_(None))
            .values(dropped=why)
        )
        with outage_as_unavailable():
            await in_transaction(self.engine, lambda conn: conn.execute(statement))
