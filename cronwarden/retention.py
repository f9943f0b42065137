"""Retention: ended runs past keep_runs / keep_for go, with their log files and
artifacts, off the hot path; expired Idempotency-Keys go too.

A pass finds, for every task that has runs (a removed task's history ages under the
daemon's defaults), the position in time before which its runs expired, then walks the
history oldest first, whatever the task, in batches sized by time (``next_batch``): log
files and artifact directories first, then rows, yielding to the event loop between
batches so fires and API requests never wait behind a long delete.  A task's catch-up
anchor is saved before its first run goes.  Oldest first, because runs of many tasks interleave
in time: one task's 200 oldest runs lay on up to 200 pages of the table and of each
index ordered by time, all tasks' 200 oldest on a few (2.1x the rows a second).
Pending and running runs are never deleted, whatever their age.  Last, artifact
directories here whose run has no row any more go too: on a shared database another
node's pass may have deleted the row of a run this node ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import structlog

from cronwarden.artifacts.layout import remove_tree, run_dir, run_ids_on_disk
from cronwarden.config import Config
from cronwarden.errors import StoreUnavailable
from cronwarden.live_config import LiveConfig
from cronwarden.runlog.layout import remove_log
from cronwarden.store import Store
from cronwarden.store.pruning import Position
from cronwarden.support.clock import Clock
from cronwarden.support.statement_sizes import nearest_power_of_two

log = structlog.get_logger("cronwarden.retention")

BATCH = 256  # runs in a pass's first batch; artifact directories checked at once
# On SQLite batches of 2,048 and 4,096 held the write lock 70-230 ms at a million runs.
MAX_BATCH = 1024
# How long a batch's delete should take, as the pass sees it (its hops to the driver's
# thread included; on SQLite not its checkpoint, which runs beside the next batch).
# On SQLite it holds the one write lock, and a fire waits behind it.  Every batch has
# fixed costs (a commit, FTS5's segment, choosing its ids), so the fewer the batches,
# the more rows a second.  At 20
# ms the batches stayed small and the pass slowed to 0.6x; at 40 ms, rounded down to a
# power of two, a pass stayed at 256 a batch (~30 ms each: doubling needed under 20)
# and deleted 7,600 rows a second; at 50 ms, rounded to the nearest, 10,700, with a
# per-second task's p99 under its 50 ms during the pass (BENCHMARKS.md).
# Sizes are powers of two (support/statement_sizes.py).
BATCH_SECONDS = 0.05
# A delete holds SQLite's one write lock, and a fire's start waits behind it: a batch
# is not begun this close to the next fire's instant, but once the fire has had its
# moment (a per-second task's p99 went 28 -> 66 ms during a pass of 50 ms batches).
# At most once per STEP_ASIDE_EVERY: where fires come every few milliseconds (thousands
# of tasks spread over the minute) the pass would otherwise wait before every batch.
STEP_ASIDE = timedelta(milliseconds=120)
FIRE_MOMENT = timedelta(milliseconds=40)
STEP_ASIDE_EVERY = timedelta(milliseconds=500)
# On SQLite each batch's checkpoint runs while the next batch is deleted
# (store/pruning.py), and the WAL is reused from its start only once every page in it
# is back in the database: once it has grown to this size, the next delete waits for
# the last checkpoint, and so writes it afresh (a batch adds ~1.6 pages a run).
WAL_SETTLE_BYTES = 16 * 1024 * 1024
CATCH_UP_CHECKPOINTS = 3  # tries; then the pass goes on, and tries again at the next batch
INTERVAL = timedelta(minutes=10)
KEY_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class Keep:
    """How much history one task keeps: its newest ``runs``, none older than ``age``
    (``None``: no age limit, from keep_for = "0")."""

    runs: int
    age: timedelta | None


def keep_for_task(config: Config, task_name: str) -> Keep:
    """The task's own keep_runs / keep_for, else the daemon's."""
    daemon = config.daemon
    task = config.tasks.get(task_name)
    runs = task.keep_runs if task is not None and task.keep_runs is not None else daemon.keep_runs
    age = task.keep_for if task is not None and task.keep_for is not None else daemon.keep_for
    return Keep(runs=runs, age=age if age > timedelta(0) else None)


def next_batch(size: int, took: float) -> int:
    """The next batch's runs, from this one's and the seconds its delete ``took``:
    scaled towards BATCH_SECONDS, at most doubled or halved at a time (one slow commit
    is not a trend), between BATCH and MAX_BATCH, the nearest power of two.  Never below BATCH:
    on a busy daemon ``took`` is mostly the wait for the loop and the driver's thread,
    not the write lock, and smaller batches only multiply their fixed costs (a soak's
    pass shrank to a few runs a batch and deleted fewer runs a second than it made)."""
    wanted = size * BATCH_SECONDS / max(took, 1e-6)
    return nearest_power_of_two(min(max(wanted, size / 2, BATCH), size * 2, MAX_BATCH))


@dataclass(frozen=True)
class PassReport:
    """What one pass did, for /api/info, the log and the metrics."""

    started_at: datetime
    duration_ms: int
    deleted_runs: int
    deleted_log_files: int
    freed_bytes: int  # log files and artifacts
    expired_keys: int
    runs: int  # rows left
    log_files: int  # in the logs directory after the pass
    log_bytes: int
    error: str | None = None


@dataclass
class _Done:
    """What a pass removed so far."""

    runs: int = 0
    files: int = 0  # log files
    freed: int = 0  # bytes of log files and artifacts


class Retention:
    def __init__(
        self,
        store: Store,
        config: LiveConfig,
        logs_dir: Path,
        clock: Clock,
        on_pass: Callable[[PassReport], None] | None = None,
        artifacts_root: Path | None = None,
        next_fire: Callable[[], datetime | None] | None = None,
    ) -> None:
        self.store = store
        self.next_fire = next_fire  # the next instant any task fires here
        self._stepped_aside: datetime | None = None  # the end of the last wait
        self.artifacts_root = artifacts_root  # data_dir/artifacts (None: none kept)
        self.on_pass = on_pass
        self.queries = store.pruning
        self._checkpoint: asyncio.Future[bool] | None = None  # the last batch's (SQLite)
        self._wal_bytes = 0  # the WAL's size once the last batch committed
        self.config = config
        self.logs_dir = logs_dir
        self.clock = clock
        self.last: PassReport | None = None

    async def run_pass(self) -> PassReport:
        started, began = self.clock.now(), time.monotonic()
        done, keys, error = _Done(), 0, None
        try:
            await self._prune(await self._bounds(started), done)
            while expired := await self.queries.expired_keys(started - KEY_TTL, BATCH):
                keys += expired
                await asyncio.sleep(0)
            done.freed += await self._remove_unknown_artifacts()
        except Exception as exc:  # the next pass tries again; the daemon carries on
            error = f"{type(exc).__name__}: {exc}"
            log.error("retention.failed", error=error)
        runs = await self._count_quietly()
        log_files, log_bytes = await asyncio.to_thread(_disk_use, self.logs_dir)
        report = PassReport(
            started_at=started,
            duration_ms=int((time.monotonic() - began) * 1000),
            deleted_runs=done.runs,
            deleted_log_files=done.files,
            freed_bytes=done.freed,
            expired_keys=keys,
            runs=runs,
            log_files=log_files,
            log_bytes=log_bytes,
            error=error,
        )
        self.last = report
        if self.on_pass is not None:
            self.on_pass(report)
        figures = dataclasses.asdict(report)
        del figures["started_at"], figures["error"]  # the event's own time; logged above
        log.info("retention.pass", **figures)
        return report

    async def serve(self, interval: timedelta = INTERVAL) -> None:
        """A pass now, then one per ``interval``, for the daemon's life."""
        while True:
            try:
                await self.run_pass()
            except OSError as exc:  # the logs directory could not be read: say so, go on
                log.error("retention.failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(interval.total_seconds())

    async def _bounds(self, started: datetime) -> dict[str, Position]:
        """Per task that has runs: the position before which its ended runs expired."""
        bounds = {}
        for name in await self.queries.task_names():
            keep = keep_for_task(self.config.current, name)
            older_than = started - keep.age if keep.age is not None else None
            bound = await self.queries.expiry_bound(name, keep.runs, older_than)
            if bound is not None:
                bounds[name] = bound
        return bounds

    async def _prune(self, bounds: dict[str, Position], done: _Done) -> None:
        """Expired runs, oldest first whatever their task, in batches: each task's
        anchor is saved before its first run goes.  ``done`` counts as it goes (a
        pass that fails part way says what it did).  On SQLite the pass checkpoints
        the WAL while it runs, and ends with every page back in the database."""
        if not bounds:
            return
        with self.queries.checkpointing():
            await self._walk(bounds, done)
            await self._catch_up(0)

    async def _walk(self, bounds: dict[str, Position], done: _Done) -> None:
        """The pass's batches.

        Pipelined: while one batch's rows are deleted, the next batch is read and its
        files are removed (a read does not wait for the write lock, nor file removal
        for either).  One delete at a time, and an anchor is written between them:
        on SQLite writers queue for the one lock anyway."""
        newest_bound = max(bounds.values())
        anchored: set[str] = set()
        size = BATCH
        deleting: asyncio.Future[tuple[int, float]] | None = None
        reading = asyncio.ensure_future(self.queries.ended_between(None, newest_bound, size))
        try:
            while rows := await reading:
                reading = asyncio.ensure_future(
                    self.queries.ended_between(rows[-1][2], newest_bound, size)
                )
                expired = _expired(rows, bounds)
                ids = list(expired)
                if ids:
                    removed_files, removed_bytes = await asyncio.to_thread(self._remove_logs, ids)
                    done.files += removed_files
                    done.freed += removed_bytes
                if deleting is not None:
                    size = next_batch(size, await self._deleted(deleting, done))
                    deleting = None
                for task in sorted(set(expired.values()) - anchored):
                    await self.queries.keep_anchor(task)
                    anchored.add(task)
                if ids:
                    await self._catch_up(WAL_SETTLE_BYTES)
                    await self._step_aside()
                    deleting = asyncio.ensure_future(self._delete(ids))
        finally:
            # A delete under way completes and counts, whatever stopped the walk (the
            # next batch's files, say); the read ahead is not needed any more.
            if deleting is not None:
                await self._deleted(deleting, done)
            if not reading.done():
                reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading

    async def _step_aside(self) -> None:
        """Wait out a fire due within STEP_ASIDE, and its moment after."""
        if self.next_fire is None:
            return
        when = self.next_fire()
        if when is None:
            return
        now = self.clock.now()
        if not timedelta(0) <= when - now < STEP_ASIDE:
            return
        if self._stepped_aside is not None and now - self._stepped_aside < STEP_ASIDE_EVERY:
            return
        self._stepped_aside = when + FIRE_MOMENT
        moment_over: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.clock.call_at(when + FIRE_MOMENT, partial(_settle, moment_over))
        try:
            await moment_over
        finally:
            timer.cancel()

    async def _catch_up(self, wal_bytes: int) -> None:
        """Once the WAL has grown to ``wal_bytes``, wait until every page of it is back in
        the database (the next write then starts it afresh): the last batch's checkpoint,
        and another while readers of older snapshots held that one back."""
        checkpoint = self._checkpoint
        if checkpoint is None or self._wal_bytes < wal_bytes:
            return
        self._checkpoint = None
        for _ in range(CATCH_UP_CHECKPOINTS):
            await asyncio.wait([checkpoint])  # a failure is logged by _log_failure
            if (
                not checkpoint.cancelled()
                and checkpoint.exception() is None
                and checkpoint.result()
            ):
                return
            checkpoint = asyncio.ensure_future(self.queries.checkpoint())
            checkpoint.add_done_callback(_log_failure)

    async def _delete(self, ids: list[str]) -> tuple[int, float]:
        """(rows deleted, seconds it took: its checkpoint is not waited for)."""
        began = time.monotonic()
        deleted = await self.queries.delete_runs(ids)
        took = time.monotonic() - began
        if deleted.checkpoint is not None:
            self._checkpoint, self._wal_bytes = deleted.checkpoint, deleted.wal_bytes
            deleted.checkpoint.add_done_callback(_log_failure)
        return deleted.rows, took

    @staticmethod
    async def _deleted(deleting: asyncio.Future[tuple[int, float]], done: _Done) -> float:
        """Wait for a batch's delete; counts it, returns the seconds it took."""
        deleted, took = await deleting
        done.runs += deleted
        return took

    def _remove_logs(self, ids: list[str]) -> tuple[int, int]:
        """Each run's log files and artifacts: (log files, bytes of both) removed."""
        files = size = 0
        for run_id in ids:
            removed_files, removed_bytes = remove_log(self.logs_dir, run_id)
            files, size = files + removed_files, size + removed_bytes
            if self.artifacts_root is not None:
                size += remove_tree(run_dir(self.artifacts_root, run_id))[1]
        return files, size

    async def _remove_unknown_artifacts(self) -> int:
        """Artifact directories whose run has no row (deleted by another node's pass);
        returns the bytes freed.  A run's row is committed before its directory is
        made, so a directory without one is never a run about to start."""
        root = self.artifacts_root
        if root is None:
            return 0
        on_disk = await asyncio.to_thread(run_ids_on_disk, root)
        freed = 0
        for start in range(0, len(on_disk), BATCH):
            batch = on_disk[start : start + BATCH]
            unknown = set(batch) - await self.queries.known_runs(batch)
            for run_id in unknown:
                freed += (await asyncio.to_thread(remove_tree, run_dir(root, run_id)))[1]
        return freed

    async def _count_quietly(self) -> int:
        try:
            return await self.store.run_count()
        except StoreUnavailable:
            return self.last.runs if self.last is not None else 0


def _expired(rows: list[tuple[str, str, Position]], bounds: dict[str, Position]) -> dict[str, str]:
    """Of a batch read oldest first, the runs past their task's bound: id -> task."""
    return {i: task for i, task, at in rows if task in bounds and at < bounds[task]}


def _log_failure(checkpoint: asyncio.Future[bool]) -> None:
    """A checkpoint that failed is logged; the next batch's tries again."""
    if not checkpoint.cancelled() and (error := checkpoint.exception()) is not None:
        log.warning("retention.checkpoint_failed", error=f"{type(error).__name__}: {error}")


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _disk_use(logs_dir: Path) -> tuple[int, int]:
    files = size = 0
    try:
        entries = os.scandir(logs_dir)
    except FileNotFoundError:
        return 0, 0
    with entries:
        for entry in entries:
            try:
                size += entry.stat(follow_symlinks=False).st_blocks * 512
            except FileNotFoundError:
                continue
            files += 1
    return files, size
