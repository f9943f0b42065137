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


async def prune_and_watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settle: int) -> int:
    """A pass over RUNS expired runs in batches of 256, on a disk where a checkpoint
    takes longer than a batch's delete (as at a million runs): the WAL's peak in bytes."""
    monkeypatch.setattr(retention_module, "BATCH", 256)
    monkeypatch.setattr(retention_module, "MAX_BATCH", 256)
    monkeypatch.setattr(retention_module, "WAL_SETTLE_BYTES", settle)
    checkpoint = pruning._checkpoint

    def slow_checkpoint(conn: Connection) -> None:
        time.sleep(0.1)
        checkpoint(conn)

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
    peak = await prune_and_watch(tmp_path, monkeypatch, settle=1 << 40)
    assert peak >= 8 * 1024 * 1024, peak
