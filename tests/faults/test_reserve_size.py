"""What recording outcomes costs on disk, measured on a real SQLite store with the
daemon's pragmas, held against the space kept aside for a full data_dir
(cronwarden/host/space_reserve.py): the reserve must cover the bounded WAL plus the
outcomes it promises to record."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cronwarden.host.space_reserve import RESERVE_BYTES, RESERVE_OUTCOMES, WAL_BOUND_BYTES
from cronwarden.model import EndReason, Status, Trigger
from cronwarden.run_record import RunRecord
from cronwarden.store import Store, open_engine

pytestmark = pytest.mark.faults

T0 = datetime(2036, 5, 1, tzinfo=UTC)


def used(db: Path) -> int:
    """Bytes the database takes on disk: the file and its WAL (allocated blocks)."""
    return sum(
        os.stat(path).st_blocks * 512
        for path in (db, db.with_name(db.name + "-wal"))
        if path.exists()
    )


async def record_outcomes(store: Store, count: int, start: int) -> None:
    """``count`` runs as the dispatcher records them: claimed, started, ended."""
    for i in range(start, start + count):
        at = T0 + timedelta(seconds=i)
        run = RunRecord(
            id=f"0190{i:028d}",
            task_name="a-task-with-a-name-of-typical-length",
            status=Status.PENDING,
            triggered_by=Trigger.SCHEDULE,
            scheduled_for=at,
            created_at=at,
            attempt=1,
            node="host.example.org:9477",
            task_hash="f" * 64,
            params={},
        )
        await store.claim([run])
        await store.record(run.id, {"status": Status.RUNNING, "pid": 4242, "start_at": at})
        await store.record(
            run.id,
            {
                "status": Status.ENDED,
                "end_reason": EndReason.FAILED,
                "exit_code": 1,
                "error": "exited with 1: no space left on device while writing its log",
                "end_at": at + timedelta(seconds=1),
                "duration_ms": 1000,
                "log_size": 10 << 20,
                "log_truncated": True,
            },
        )


async def test_the_reserve_covers_the_wal_and_the_outcomes_it_promises(tmp_path: Path) -> None:
    db = tmp_path / "cronwarden.db"
    store = await Store.open(open_engine(f"sqlite+aiosqlite:///{db}"))
    try:
        await record_outcomes(store, 2000, 0)  # a history already there
        peak_wal = 0
        before = used(db)
        step = RESERVE_OUTCOMES // 10
        for batch in range(10):
            await record_outcomes(store, step, 2000 + batch * step)
            wal = db.with_name(db.name + "-wal")
            peak_wal = max(peak_wal, wal.stat().st_size if wal.exists() else 0)
        grown = used(db) - before
    finally:
        await store.close()
    # The WAL stays bounded (it grew ~4 MB before a checkpoint by default).
    assert peak_wal <= WAL_BOUND_BYTES, peak_wal
    # What RESERVE_OUTCOMES outcomes take, with the WAL at its bound, fits the reserve.
    assert grown + WAL_BOUND_BYTES <= RESERVE_BYTES, (grown, WAL_BOUND_BYTES, RESERVE_BYTES)
