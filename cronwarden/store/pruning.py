"""The SQL of retention: which ended runs have outlived keep_runs / keep_for, and their
deletion in small batches.

Why batches: on SQLite a delete holds the one write lock, and every fire's row waits
behind it; a few hundred rows at a time keep that wait to milliseconds.  Why rows by
id and not one ranged DELETE: the caller removes each run's log files and artifacts
before its row (whose artifact listing goes with it), so a crash in between leaves rows
that the next pass deletes again, never orphan files.

Why, on SQLite, deletes on a lane whose commits do not checkpoint: a batch of deleted
runs dirties ~1.6 pages a run (a run's entries in 13 indexes, the one ordered by
duration at random places), and copying them back into the database and syncing it
took two thirds of each batch (26 of 40 ms for 512 runs at 1,000,000 runs).  The
checkpoint runs on a thread of its own while the next batch is deleted: 22,000 rows a
second instead of 15,000 in a bare loop of 1,024-run batches (BENCHMARKS.md).  The pass
waits for one now and then (``Deleted.checkpoint``) so that the WAL starts afresh, and
while it runs the recorder's commits leave checkpoints to it (lane.Writers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronwarden.column_types import UTCDateTime
from cronwarden.model import Artifact, IdempotencyKey, Run, Status, TaskState, utcnow
from cronwarden.store.engine import upsert_insert
from cronwarden.store.lane import Lane, Writers, checkpoint_past
from cronwarden.store.transactions import in_transaction

_runs = Run.__table__  # type: ignore[attr-defined]
_keys = IdempotencyKey.__table__  # type: ignore[attr-defined]
_states = TaskState.__table__  # type: ignore[attr-defined]
_artifacts = Artifact.__table__  # type: ignore[attr-defined]


Position = tuple[datetime, str]  # (created_at, id): where a run is in the history


def _literal(position: Position) -> sa.Tuple:
    created, run_id = position
    return sa.tuple_(sa.literal(created, UTCDateTime()), sa.literal(run_id))


@dataclass(frozen=True)
class Deleted:
    """A batch's deleted rows; on SQLite also its checkpoint under way and the WAL's
    size once it committed (SQLite cuts it back when it starts the WAL afresh)."""

    rows: int
    checkpoint: asyncio.Future[bool] | None = None
    wal_bytes: int = 0


class RetentionQueries:
    """Reads and batched deletes for the retention pass (its own connections: it never
    goes through the run recorder, whose commits must stay short)."""

    def __init__(self, engine: AsyncEngine, writers: Writers | None = None) -> None:
        self.engine = engine
        self._writers = writers or Writers()  # shared with the recorder's commits
        self._deletes: Lane | None = None
        self._checkpoints: Lane | None = None
        # (In memory each connection has a database of its own: no lanes there.)
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._deletes = Lane(engine, 1, "cronwarden-retention")
            self._checkpoints = Lane(engine, 1, "cronwarden-checkpoint")

    async def close(self) -> None:
        for lane in (self._deletes, self._checkpoints):
            if lane is not None:
                await lane.close()

    async def task_names(self) -> list[str]:
        """Every task that has runs, configured or not (a removed task's history ages
        under the daemon's defaults)."""
        query = sa.select(_runs.c.task_name).distinct()
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def expiry_bound(
        self, task_name: str, keep_runs: int, older_than: datetime | None
    ) -> Position | None:
        """The (created_at, id) position before which a task's ended runs have expired:
        past its newest ``keep_runs``, or created before ``older_than``.  Computed once
        a pass: deleting older rows does not move it."""
        newest_kept = (
            sa.select(_runs.c.created_at, _runs.c.id)
            .where(_runs.c.task_name == task_name)
            .order_by(_runs.c.created_at.desc(), _runs.c.id.desc())
            .offset(keep_runs - 1)
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(newest_kept)).first()
        bounds: list[Position] = [] if row is None else [(row[0], row[1])]
        if older_than is not None:
            bounds.append((older_than, ""))  # "" sorts before every id
        return max(bounds) if bounds else None

    async def ended_between(
        self, after: Position | None, before: Position, limit: int
    ) -> list[tuple[str, str, Position]]:
        """Up to ``limit`` ended runs of any task after ``after`` and before ``before``,
        oldest first, as (id, task, position): one walk of ix_runs_status_created.
        Pending and running runs are never chosen."""
        position = sa.tuple_(_runs.c.created_at, _runs.c.id)
        chosen = [_runs.c.status == Status.ENDED.value, position < _literal(before)]
        if after is not None:
            chosen.append(position > _literal(after))
        query = (
            sa.select(_runs.c.id, _runs.c.task_name, _runs.c.created_at)
            .where(*chosen)
            .order_by(_runs.c.created_at, _runs.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(run_id, task, (created, run_id)) for run_id, task, created in rows]

    async def keep_anchor(self, task_name: str) -> None:
        """Copy the task's newest scheduled_for into task_state before its rows may go:
        catch-up measures missed fires from it, and must not see a pruned history as a
        task that never fired."""
        newest_query = sa.select(sa.func.max(_runs.c.scheduled_for)).where(
            _runs.c.task_name == task_name
        )

        async def anchor(conn: AsyncConnection) -> None:
            newest = (await conn.execute(newest_query)).scalar_one_or_none()
            if newest is None:
                return
            kept = _states.c.last_scheduled_for
            await conn.execute(
                upsert_insert(self.engine, _states)
                .values(task_name=task_name, last_scheduled_for=newest, updated_at=utcnow())
                .on_conflict_do_update(
                    index_elements=[_states.c.task_name],
                    set_={"last_scheduled_for": newest, "updated_at": utcnow()},
                    where=sa.or_(kept.is_(None), kept < newest),  # never lowered
                )
            )

        await in_transaction(self.engine, anchor)

    async def delete_runs(self, ids: Sequence[str]) -> Deleted:
        """The runs' rows, with their Idempotency-Keys and artifact listings."""
        if self._deletes is None:
            rows = await in_transaction(self.engine, lambda conn: conn.run_sync(_delete_rows, ids))
            return Deleted(rows)
        async with self._writers.turn:
            rows, checkpoint, wal_bytes = await self._deletes.read(
                partial(self._delete_on_lane, ids)
            )
        return Deleted(rows, asyncio.wrap_future(checkpoint), wal_bytes)

    @contextlib.contextmanager
    def checkpointing(self) -> Iterator[None]:
        """A pass under way: on SQLite its checkpoints are the only ones (lane.Writers)."""
        self._writers.pass_checkpoints = self._deletes is not None
        try:
            yield
        finally:
            self._writers.pass_checkpoints = False

    async def checkpoint(self) -> bool:
        """Another checkpoint (SQLite): whether every page of the WAL is back."""
        if self._checkpoints is None:
            return True
        return await asyncio.wrap_future(self._checkpoints.submit(_checkpoint))

    def _delete_on_lane(
        self, ids: Sequence[str], conn: Connection
    ) -> tuple[int, Future[bool], int]:
        """On the lane's thread: the delete, then its checkpoint asked for from here the
        moment the commit returns (not after a hop through a busy loop: a connection
        of another writer committing meanwhile would copy the pages back itself)."""
        assert self._checkpoints is not None
        with conn.begin():
            rows = _delete_rows(checkpoint_past(conn, 0), ids)
        checkpoint = self._checkpoints.submit(_checkpoint)
        try:
            wal_bytes = os.stat(f"{self.engine.url.database}-wal").st_size
        except FileNotFoundError:
            wal_bytes = 0
        return rows, checkpoint, wal_bytes

    async def known_runs(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` that still have a row."""
        query = sa.select(_runs.c.id).where(_runs.c.id.in_(ids))
        async with self.engine.connect() as conn:
            return set((await conn.execute(query)).scalars())

    async def expired_keys(self, created_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` Idempotency-Keys taken before ``created_before``."""
        chosen = (
            sa.select(_keys.c.task_name, _keys.c.key)
            .where(_keys.c.created_at < created_before)
            .limit(limit)
        )

        async def delete(conn: AsyncConnection) -> int:
            rows = (await conn.execute(chosen)).all()
            if rows:
                pairs = sa.tuple_(_keys.c.task_name, _keys.c.key).in_([tuple(r) for r in rows])
                await conn.execute(_keys.delete().where(pairs))
            return len(rows)

        return await in_transaction(self.engine, delete)


def _delete_rows(conn: Connection, ids: Sequence[str]) -> int:
    conn.execute(_keys.delete().where(_keys.c.run_id.in_(ids)))
    conn.execute(_artifacts.delete().where(_artifacts.c.run_id.in_(ids)))
    return int(conn.execute(_runs.delete().where(_runs.c.id.in_(ids))).rowcount or 0)


def _checkpoint(conn: Connection) -> bool:
    """Pages in the WAL back into the database, without waiting for anyone (PASSIVE):
    whether every page is back (a reader of an older snapshot holds the newer back)."""
    _busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    return bool(frames == copied)
