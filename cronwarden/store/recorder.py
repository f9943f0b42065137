"""Group commit: callers enqueue a write and await its durability; one writer drains
whatever queued while the previous commit was in flight into the next transaction.

That is how databases batch log flushes, and why a burst of 1,000 fires costs a few
multi-row statements instead of 3,000 commits queued one behind another.  The rules
of DESIGN.md still hold because each caller awaits its own write: a run's row is
durable before its process is spawned, an outcome before it is reported.

Within one transaction new rows are inserted first (``INSERT .. ON CONFLICT .. RETURNING
id`` sent as multi-row statements, so a fire another node already claimed is simply
not returned), then keyed claims, then updates, merged per run in
the order they were asked for and sent as one executemany per column set, then what
jobs reported (each told whether its run had not ended yet), then the deletes of
reserved fires that will not happen (cronwarden/reservations.py).  If a batch
fails for a reason other than the database being unreachable, its writes are retried
one by one so a single bad write cannot fail the others.

On SQLite the batch runs as one call in a lane of the recorder's own (see lane.py): a
batch of ten writes took 9 ms under the sustained benchmark through the async driver,
4 ms this way.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cronwarden.chains import ChainAsk
from cronwarden.errors import RecorderStopped, short_message
from cronwarden.model import IdempotencyKey, Run, Status
from cronwarden.reservations import discardable_rows, take_over_rows
from cronwarden.run_record import RunRecord, run_row
from cronwarden.store.chaining import start_chained
from cronwarden.store.engine import upsert_insert
from cronwarden.store.lane import Lane, Writers
from cronwarden.store.protocol import KeyClaim
from cronwarden.store.resilience import is_outage, unavailable
from cronwarden.store.transactions import in_transaction
from cronwarden.support.statement_sizes import power_of_two_pieces

log = structlog.get_logger("cronwarden.store")

RUNS = Run.__table__  # type: ignore[attr-defined]
KEYS = IdempotencyKey.__table__  # type: ignore[attr-defined]
_RUN_COLUMNS = [column.name for column in RUNS.columns]
# Rows per INSERT: a power of two, well under SQLite's bound-parameter limit.  A batch
# goes in pieces whose sizes are powers of two (support/statement_sizes.py).
_INSERT_CHUNK = 256


@dataclass(frozen=True)
class _Insert:
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class _Keyed:
    row: dict[str, Any]
    key: KeyClaim


@dataclass(frozen=True)
class _Update:
    run_id: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class _Discard:
    run_ids: Sequence[str]


@dataclass(frozen=True)
class _End(_Update):
    """A run's end, and the chained runs it starts in the same transaction."""

    asks: Sequence[ChainAsk]


@dataclass(frozen=True)
class _Report:
    """What a run's job reported; written only while the run has not ended."""

    run_id: str
    values: Mapping[str, Any]


_Write = _Insert | _Keyed | _Update | _Discard | _Report


class Recorder:
    """The single writer of run rows; see the module docstring."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = _insert_statement(engine)
        self._lane: Lane | None = None
        if engine.dialect.name == "sqlite":
            self._lane = Lane(engine, 1, "cronwarden-recorder")
        self.writers = Writers()  # what these commits share with retention's (SQLite)
        self._queue: asyncio.Queue[tuple[_Write, asyncio.Future[Any]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False  # see close()
        self.batches = 0  # commits made, for tests and benchmarks
        # Called when the database's disk is full (SQLite in data_dir): frees room.
        self.on_disk_full: Callable[[str], None] | None = None
        # Why the last write that reached the database failed as an outage (unreachable,
        # disk full); None once a write lands again.  /health reads it: a store that
        # answers a ping but cannot write is not available.
        self.failing: str | None = None
        self._landed_at: float | None = None  # loop time of the last commit that landed

    def landed_within(self, seconds: float) -> bool:
        """Whether a commit landed in the last ``seconds``: the database answered."""
        landed = self._landed_at
        return landed is not None and asyncio.get_running_loop().time() - landed < seconds

    def start(self) -> asyncio.Task[None]:
        """Start the writer; the daemon supervises the task it returns."""
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._write_forever(), name="cronwarden recorder"
            )
        return self._writer

    async def close(self) -> None:
        """Let queued writes land, then stop the writer and await it.  A write asked for
        afterwards fails (RecorderStopped) rather than start a writer that nothing
        would await: the loop would end with it pending, its write lost."""
        self._closed = True
        if self._writer is None:
            return
        drained = asyncio.ensure_future(self._queue.join())
        await asyncio.wait({drained, self._writer}, return_when=asyncio.FIRST_COMPLETED)
        drained.cancel()
        self._writer.cancel()
        await asyncio.gather(self._writer, return_exceptions=True)
        self._writer = None
        if self._lane is not None:
            # Its connection and thread go; a write after this (none is expected) would
            # go through the async engine.
            await self._lane.close()
            self._lane = None

    # -- what callers await --------------------------------------------------------

    async def insert(self, runs: Sequence[RunRecord]) -> set[str]:
        """Commit new runs; returns the ids committed (a claimed fire is left out)."""
        result: set[str] = await self._submit(_Insert([run_row(run) for run in runs]))
        return result

    async def end(
        self, run_id: str, values: Mapping[str, Any], asks: Sequence[ChainAsk]
    ) -> list[dict[str, Any]]:
        """Record a run's end and create the chained runs it starts (store/chaining.py)
        in the same transaction; returns the rows created."""
        result: list[dict[str, Any]] = await self._submit(_End(run_id, dict(values), asks))
        return result

    async def insert_keyed(self, run: RunRecord, key: KeyClaim) -> str:
        """Commit ``run`` holding ``key``, unless a live earlier request holds it;
        returns the id of the run that owns the key."""
        result: str = await self._submit(_Keyed(run_row(run), key))
        return result

    async def update(self, run_id: str, values: Mapping[str, Any]) -> None:
        await self._submit(_Update(run_id, dict(values)))

    async def report(self, run_id: str, values: Mapping[str, Any]) -> bool:
        """Write what a run's job reported (after this batch's other updates, an end
        among them); False if the run has ended, or is unknown: nothing was written."""
        result: bool = await self._submit(_Report(run_id, dict(values)))
        return result

    async def discard(self, run_ids: Sequence[str]) -> None:
        """Delete the rows of reserved fires that will not happen, if still unused."""
        await self._submit(_Discard(list(run_ids)))

    async def _submit(self, write: _Write) -> Any:
        if self._closed or self.start().done():
            raise RecorderStopped("the recorder has stopped; nothing more can be recorded")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((write, future))
        return await future

    # -- the writer ---------------------------------------------------------------

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            except BaseException as exc:  # a bug: fail these writes and die loudly
                _settle(batch, error=RecorderStopped(f"the recorder failed: {exc!r}"))
                raise
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[tuple[_Write, asyncio.Future[Any]]]) -> None:
        writes = [write for write, _ in batch]
        try:
            if self._lane is not None:
                async with self.writers.turn:
                    results = await self._lane.transaction(
                        lambda conn: self._apply(self.writers.checkpoint_here(conn), writes)
                    )
            else:
                results = await in_transaction(
                    self._engine, lambda conn: conn.run_sync(self._apply, writes)
                )
        except (SQLAlchemyError, OSError, TimeoutError, ValueError, TypeError) as exc:
            if is_outage(exc):
                if any(_writes(write) for write in writes):
                    self.failing = short_message(exc)
                if self.on_disk_full is not None and "disk is full" in str(exc):
                    self.on_disk_full(short_message(exc))
                _settle(batch, error=unavailable(exc))
            elif len(batch) == 1:
                log.error("store.write_failed", error=short_message(exc))
                _settle(batch, error=exc)
            else:  # find the write at fault; the others still land
                for item in batch:
                    await self._commit([item])
        else:
            self.batches += 1
            self._landed_at = asyncio.get_running_loop().time()
            if any(_writes(write) for write in writes):
                self.failing = None
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    def _apply(self, conn: Connection, writes: list[_Write]) -> list[Any]:
        results: list[Any] = [None] * len(writes)
        inserts = [(i, w) for i, w in enumerate(writes) if isinstance(w, _Insert)]
        if inserts:
            inserted = self._insert_rows(conn, [row for _, w in inserts for row in w.rows])
            for i, insert in inserts:
                results[i] = {row["id"] for row in insert.rows} & inserted
        for i, keyed in enumerate(writes):
            if isinstance(keyed, _Keyed):
                results[i] = self._insert_keyed(conn, keyed)
        merged: dict[str, dict[str, Any]] = {}
        for update in writes:
            if isinstance(update, _Update):
                merged.setdefault(update.run_id, {}).update(update.values)
        _update_rows(conn, merged)
        for i, report in enumerate(writes):
            if isinstance(report, _Report):
                statement = _update_statement(tuple(sorted(report.values)))
                results[i] = conn.execute(statement, _bound(report)).rowcount == 1
        for i, end in enumerate(writes):
            if isinstance(end, _End):
                results[i] = start_chained(conn, end.run_id, end.values, end.asks)
        discarded = [i for w in writes if isinstance(w, _Discard) for i in w.run_ids]
        if discarded:
            conn.execute(sa.delete(RUNS).where(RUNS.c.id.in_(discarded), discardable_rows()))
        return results

    def _insert_rows(self, conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
        """A fire already claimed is left out, unless its row is a reservation the new
        row takes over (cronwarden/reservations.py): the reservation's delete, on its
        way, then finds nothing."""
        inserted: set[str] = set()
        for start, end in power_of_two_pieces(len(rows), _INSERT_CHUNK):
            result = conn.execute(self._insert, rows[start:end])
            inserted.update(row[0] for row in result)
        return inserted

    def _insert_keyed(self, conn: Connection, write: _Keyed) -> str:
        """Take the key (or an expired one) in the same transaction as the run's row."""
        key = write.key
        taken = conn.execute(
            upsert_insert(self._engine, KEYS)
            .values(
                task_name=key.task_name,
                key=key.key,
                run_id=write.row["id"],
                fingerprint=key.fingerprint,
                created_at=key.created_at,
            )
            .on_conflict_do_update(
                index_elements=[KEYS.c.task_name, KEYS.c.key],
                set_={
                    "run_id": write.row["id"],
                    "fingerprint": key.fingerprint,
                    "created_at": key.created_at,
                },
                where=KEYS.c.created_at < key.expired_before,
            )
            .returning(KEYS.c.run_id)
        )
        if taken.first() is not None:
            conn.execute(RUNS.insert(), [write.row])
            return str(write.row["id"])
        owner = conn.execute(
            sa.select(KEYS.c.run_id).where(KEYS.c.task_name == key.task_name, KEYS.c.key == key.key)
        )
        return str(owner.scalar_one())


def _insert_statement(engine: AsyncEngine) -> Any:
    """The insert of new runs (built once: building it per batch was a tenth of the
    writer's time under the sustained benchmark)."""
    insert = upsert_insert(engine, RUNS)
    return insert.on_conflict_do_update(
        index_elements=fire_columns(engine),
        set_={name: insert.excluded[name] for name in _RUN_COLUMNS},
        where=take_over_rows(insert.excluded),
    ).returning(RUNS.c.id)


def fire_columns(engine: AsyncEngine) -> list[sa.Column[Any]]:
    """A fire's unique columns: with fire_node on PostgreSQL, where an on_every_node
    fire has a row per node; without on SQLite, one daemon's database, where the
    constraint was left as it was (migration 0011)."""
    fire = [RUNS.c.task_name, RUNS.c.scheduled_for, RUNS.c.attempt]
    return [*fire, RUNS.c.fire_node] if engine.dialect.name == "postgresql" else fire


@functools.cache
def _update_statement(columns: tuple[str, ...]) -> Any:
    """The update of ``columns`` of a run; a handful of column sets recur.  An ended
    run is final: on a shared database a survivor may have ended a run of a node it
    declared dead, and that node's later writes must not overwrite it."""
    return (
        sa.update(RUNS)
        .where(RUNS.c.id == sa.bindparam("b_id"), RUNS.c.status != Status.ENDED)
        .values({name: sa.bindparam(f"b_{name}") for name in columns})
    )


def _bound(report: _Report) -> dict[str, Any]:
    return {"b_id": report.run_id, **{f"b_{name}": v for name, v in report.values.items()}}


def _update_rows(conn: Connection, merged: dict[str, dict[str, Any]]) -> None:
    """One executemany per set of columns; the values are final per run already."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for run_id, values in merged.items():
        columns = tuple(sorted(values))
        groups.setdefault(columns, []).append(
            {"b_id": run_id, **{f"b_{name}": values[name] for name in columns}}
        )
    for columns, params in groups.items():
        conn.execute(_update_statement(columns), params)


def _writes(write: _Write) -> bool:
    """Whether a write changes rows (an empty one commits even on a full disk)."""
    if isinstance(write, _Insert):
        return bool(write.rows)
    if isinstance(write, _Discard):
        return bool(write.run_ids)
    return True


def _settle(batch: list[tuple[_Write, asyncio.Future[Any]]], *, error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
