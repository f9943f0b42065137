"""Retention on a SQLite file checkpoints each batch beside the next one's delete, and
still keeps the WAL bounded: a WAL whose pages are never all back in the database is
never reused from its start, and grows with every batch of the pass."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection
from test_retention import NOW, ended, retention  # type: ignore[import-not-found]

from cronwarden import retention as retention_module
from cronwarden.store import Store, open_engine, pruning

RUNS = 8_000
PAGE = 4096


async def wal_peak(wal: Path, until: asyncio.Future[object]) -> int:
    """The WAL file's largest size while ``until`` is under way."""
    peak = 0
    while not until.done():
        with contextlib.suppress(FileNotFoundError):
            peak = max(peak, os.stat(wal).st_size)  # a stat: no thread needed
        await asyncio.sleep(0.001)
    return peak


async def prune_and_watch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settle: int, *, copying: bool = True
) -> int:
    """A pass over RUNS expired runs in batches of 256, on a disk where a checkpoint
    takes longer than a batch's delete (as at a million runs): the WAL's peak in bytes.
    Without ``copying``, a checkpoint never copies a page back while the pass runs:
    one that always lags behind the next batch, whatever the machine's load (with a
    slow checkpoint alone, deletes slowed by a busy CPU let it catch up)."""
    monkeypatch.setattr(retention_module, "BATCH", 256)
    monkeypatch.setattr(retention_module, "MAX_BATCH", 256)
    monkeypatch.setattr(retention_module, "WAL_SETTLE_BYTES", settle)
    checkpoint = pruning._checkpoint

    def slow_checkpoint(conn: Connection) -> bool:
        time.sleep(0.1)
        return checkpoint(conn) if copying else False

    monkeypatch.setattr(pruning, "_checkpoint", slow_checkpoint)
    database = tmp_path / "cronwarden.db"
    store = await Store.open(open_engine(f"sqlite+aiosqlite:///{database}"))
    try:
        writer = store.recorder.start()
        await store.claim(
            [ended("old", i, timedelta(days=400) - timedelta(seconds=i)) for i in range(RUNS)]
        )
        await store.recorder.close()
        writer.cancel()
        async with store.engine.connect() as conn:  # what follows is the pass's WAL alone
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        pruner = retention(store, tmp_path)
        passing = asyncio.ensure_future(pruner.run_pass())
        peak = await wal_peak(database.with_name(database.name + "-wal"), passing)
        report = await passing
        assert report.error is None and report.deleted_runs == RUNS
        assert await store.run_count() == 0
        assert pruner.clock.now() == NOW
        return peak
    finally:
        await store.close()


async def test_a_pass_keeps_the_wal_near_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    peak = await prune_and_watch(tmp_path, monkeypatch, settle=2 * 1024 * 1024)
    # 2 MiB, and the batch that went past it
    assert peak < 4 * 1024 * 1024, peak


async def test_without_waiting_for_a_checkpoint_now_and_then_the_wal_would_grow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound above is the settling's doing, not the pass's size: the same pass,
    never waiting, grows the WAL past it."""
    peak = await prune_and_watch(tmp_path, monkeypatch, settle=1 << 40, copying=False)
    assert peak >= 8 * 1024 * 1024, peak


async def queued(lock: asyncio.Lock, waiters: int) -> None:
    """Until ``waiters`` tasks wait for ``lock`` (10 s at most)."""
    deadline = time.monotonic() + 10
    while len(lock._waiters or ()) < waiters:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the writers never queued for their turn"
        await asyncio.sleep(0.01)


async def autocheckpoint_of(store: Store) -> int:
    """What the recorder's own connection checkpoints at, as its next commit sets it."""
    await store.recorder.update("no-such-run", {"error": "x"})  # a commit on its lane
    lane = store.recorder._lane
    assert lane is not None
    return int(
        await lane.read(lambda conn: conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())
    )


async def test_while_a_pass_runs_only_it_checkpoints_and_the_recorder_again_after(
    tmp_path: Path,
) -> None:
    """A commit of the recorder that checkpointed by itself (past 128 pages) copied the
    pass's pages back inside a fire's claim: 0.46 s at a million runs."""
    store = await Store.open(open_engine(f"sqlite+aiosqlite:///{tmp_path / 'cronwarden.db'}"))
    writer = store.recorder.start()
    try:
        assert await autocheckpoint_of(store) == 128
        with store.pruning.checkpointing():
            assert await autocheckpoint_of(store) == 0
        assert await autocheckpoint_of(store) == 128
    finally:
        await store.recorder.close()
        writer.cancel()
        await store.close()


async def test_the_recorder_and_a_pass_take_turns_at_the_write_lock(tmp_path: Path) -> None:
    """Not SQLite's busy handler, which polls at up to 100 ms and let a pass's deletes
    coming back to back keep a fire's claim waiting: each waits for the other's turn in
    order, and goes the moment it ends."""
    store = await Store.open(open_engine(f"sqlite+aiosqlite:///{tmp_path / 'cronwarden.db'}"))
    writer = store.recorder.start()
    try:
        await store.claim([ended("old", 1, timedelta(days=400))])
        turn = store.recorder.writers.turn
        await turn.acquire()  # a writer's turn under way
        claim = asyncio.ensure_future(store.claim([ended("old", 2, timedelta(days=1))]))
        delete = asyncio.ensure_future(
            store.pruning.delete_runs(["00000000-0000-7000-8000-000000000001"])
        )
        await queued(turn, 2)
        assert not claim.done() and not delete.done()
        turn.release()
        assert await asyncio.wait_for(claim, 10) == {"00000000-0000-7000-8000-000000000002"}
        deleted = await asyncio.wait_for(delete, 10)
        assert deleted.rows == 1 and deleted.checkpoint is not None
        await deleted.checkpoint
        assert await store.run_count() == 1
    finally:
        await store.recorder.close()
        writer.cancel()
        await store.close()
