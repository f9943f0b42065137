"""Retention against real databases and real log files: keep_runs / keep_for per task
and by default, log files deleted with their rows, the catch-up anchor kept, running
runs and recent Idempotency-Keys left alone; and in a real daemon, a 100k-row history
pruned while a per-second task keeps firing on time."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import wait_for  # type: ignore[import-not-found]

from cronwarden import retention as retention_module
from cronwarden.config import parse_config
from cronwarden.live_config import LiveConfig
from cronwarden.model import Status
from cronwarden.retention import Retention, keep_for_task
from cronwarden.run_record import RunRecord
from cronwarden.runlog.layout import index_path
from cronwarden.runlog.writer import LogWriter
from cronwarden.store import Store, open_engine
from cronwarden.store.protocol import KeyClaim

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CONFIG = """
[daemon]
keep_runs = 1000
keep_for = "30d"

[tasks.counted]
command = "true"
keep_runs = 3

[tasks.aged]
command = "true"
keep_for = "2d"

[tasks.forever]
command = "true"
keep_for = "0"
"""


class StillClock:
    def now(self) -> datetime:
        return NOW

    def call_at(self, when: datetime, callback: object) -> None:
        raise AssertionError("retention sets no timers")


def ended(task: str, i: int, age: timedelta, **kw: object) -> RunRecord:
    created = NOW - age
    values: dict[str, object] = {
        "id": f"00000000-0000-7000-8000-{i:012d}",
        "task_name": task,
        "status": Status.ENDED.value,
        "end_reason": "success",
        "triggered_by": "schedule",
        "scheduled_for": created,
        "created_at": created,
        "end_at": created,
        "node": "n1",
        "task_hash": "h",
        **kw,
    }
    return RunRecord(**values)


def write_log(logs_dir: Path, run_id: str, size: int, cap: int = 1 << 20) -> None:
    """A real log, drop_old with segments when ``size`` passes a segment."""
    writer = LogWriter(index_path(logs_dir, run_id), max_size=cap, mode="drop_old", now=lambda: NOW)
    line = b"x" * 99 + b"\n"
    for _ in range(size // len(line)):
        writer.feed("stdout", line)
    writer.finish()


async def ids_of(store: Store, task: str) -> set[str]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(sa.text("SELECT id FROM runs WHERE task_name = :t"), {"t": task})
        return {r[0] for r in rows}


def retention(store: Store, tmp_path: Path) -> Retention:
    config = parse_config(CONFIG, tmp_path / "cronwarden.toml")
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir(exist_ok=True)
    return Retention(store, LiveConfig(config), logs_dir, StillClock())


def test_policy_takes_the_task_keys_else_the_daemon_ones(tmp_path: Path) -> None:
    config = parse_config(CONFIG, tmp_path / "c.toml")
    assert keep_for_task(config, "counted").runs == 3
    assert keep_for_task(config, "counted").age == timedelta(days=30)
    assert keep_for_task(config, "aged").runs == 1000
    assert keep_for_task(config, "aged").age == timedelta(days=2)
    assert keep_for_task(config, "forever").age is None
    assert keep_for_task(config, "removed-long-ago").age == timedelta(days=30)


async def test_keep_runs_keeps_the_newest_and_deletes_the_rest_with_their_logs(
    store: Store, tmp_path: Path
) -> None:
    pruner = retention(store, tmp_path)
    runs = [ended("counted", i, timedelta(hours=10 - i)) for i in range(8)]
    # the oldest run is still running: never deleted, and it still counts as kept
    runs[0].change({"status": "running", "end_reason": None, "end_at": None})
    await store.claim(runs)
    for run in runs:
        write_log(pruner.logs_dir, run.id, size=300 * 1024, cap=512 * 1024)  # 4 segments
    files_before = sorted(p.name for p in pruner.logs_dir.iterdir())
    assert any(name.endswith(".out.3") for name in files_before)

    report = await pruner.run_pass()

    newest = {r.id for r in runs[-3:]}
    assert await ids_of(store, "counted") == newest | {runs[0].id}
    assert report.deleted_runs == 4
    left = {p.name.split(".")[0] for p in pruner.logs_dir.iterdir()}
    assert left == newest | {runs[0].id}
    assert report.deleted_log_files == len(files_before) - len(list(pruner.logs_dir.iterdir()))
    assert report.freed_bytes > 4 * 300 * 1024
    assert report.runs == 4 and report.log_files == len(list(pruner.logs_dir.iterdir()))
    assert report.error is None


async def test_keep_for_per_task_and_by_default_and_none_for_zero(
    store: Store, tmp_path: Path
) -> None:
    pruner = retention(store, tmp_path)
    ages = [timedelta(days=d) for d in (1, 3, 40)]
    runs = [
        ended(task, 10 * t + i, age)
        for t, task in enumerate(("aged", "gone-from-config", "forever"))
        for i, age in enumerate(ages)
    ]
    await store.claim(runs)
    await pruner.run_pass()
    assert await ids_of(store, "aged") == {runs[0].id}  # keep_for = 2d
    assert await ids_of(store, "gone-from-config") == {runs[3].id, runs[4].id}  # daemon's 30d
    assert await ids_of(store, "forever") == {r.id for r in runs[6:]}  # "0": no age limit


async def test_the_catch_up_anchor_survives_the_pruning_of_every_fire(
    store: Store, tmp_path: Path
) -> None:
    pruner = retention(store, tmp_path)
    newest_fire = NOW - timedelta(days=5)
    await store.claim(
        [
            ended("aged", 1, timedelta(days=6)),
            ended("aged", 2, timedelta(days=5)),
            ended("aged", 3, timedelta(days=4), triggered_by="api", scheduled_for=None),
        ]
    )
    assert (await store.last_scheduled_for())["aged"] == newest_fire
    await pruner.run_pass()
    assert await ids_of(store, "aged") == set()
    assert (await store.last_scheduled_for())["aged"] == newest_fire


async def test_expired_idempotency_keys_go_and_fresh_ones_stay(
    store: Store, tmp_path: Path
) -> None:
    pruner = retention(store, tmp_path)
    for i, age in enumerate((timedelta(hours=30), timedelta(hours=1))):
        run = ended("forever", 50 + i, age, triggered_by="api", scheduled_for=None)
        claim = KeyClaim("forever", f"k{i}", "fp", run.created_at, NOW - timedelta(hours=24))
        await store.claim_keyed(run, claim)
    report = await pruner.run_pass()
    assert report.expired_keys == 1
    assert await store.find_key("forever", "k0", NOW - timedelta(days=9)) is None
    assert await store.find_key("forever", "k1", NOW - timedelta(days=9)) is not None


async def test_a_pass_that_fails_says_so_and_the_next_one_finishes(
    store: Store, tmp_path: Path
) -> None:
    pruner = retention(store, tmp_path)
    await store.claim([ended("counted", i, timedelta(hours=9 - i)) for i in range(5)])
    blocked = pruner.logs_dir / f"{ended('counted', 0, timedelta(0)).id}.out"
    blocked.mkdir()  # a directory where a log file should be: unlink fails
    (blocked / "x").write_text("x")
    report = await pruner.run_pass()
    assert report.error is not None and "IsADirectoryError" in report.error
    assert len(await ids_of(store, "counted")) == 5  # nothing deleted before its log
    (blocked / "x").unlink()
    blocked.rmdir()
    report = await pruner.run_pass()
    assert report.error is None and len(await ids_of(store, "counted")) == 3


async def test_a_pass_deletes_oldest_first_across_tasks(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs of several tasks interleaved in time go oldest first, whatever their task
    (task by task, one task's 200 oldest rows lay on up to 200 pages of each index):
    a pass stopped part way has taken the oldest runs of every task and left the rest."""
    monkeypatch.setattr(retention_module, "BATCH", 2)
    monkeypatch.setattr(retention_module, "MAX_BATCH", 2)
    pruner = retention(store, tmp_path)
    tasks = ("aged", "gone-from-config", "counted")
    # 12 runs, 40-51 days old, the three tasks in turn; "counted" keeps 3 by count too
    runs = [ended(tasks[i % 3], i, timedelta(days=51 - i)) for i in range(12)]
    recent = [ended("counted", 100 + i, timedelta(hours=i)) for i in range(3)]
    await store.claim(runs + recent)
    blocked = pruner.logs_dir / f"{runs[6].id}.out"  # the 7th oldest: its batch fails
    blocked.mkdir()
    (blocked / "x").write_text("x")
    report = await pruner.run_pass()
    assert report.error is not None and report.deleted_runs == 6
    left = set().union(*[await ids_of(store, task) for task in tasks])
    assert left == {r.id for r in runs[6:] + recent}
    (blocked / "x").unlink()
    blocked.rmdir()
    report = await pruner.run_pass()
    assert report.error is None and report.deleted_runs == 6
    assert await ids_of(store, "counted") == {r.id for r in recent}


# -- in a real daemon --------------------------------------------------------------


async def seed_history(database: str, count: int) -> None:
    store = await Store.open(open_engine(database))
    writer = store.recorder.start()
    old = datetime(2020, 1, 1, tzinfo=UTC)
    for first in range(0, count, 10_000):
        await store.claim(
            [
                ended("old", i, NOW - old + timedelta(seconds=i))
                for i in range(first, min(first + 10_000, count))
            ]
        )
    await store.recorder.close()
    writer.cancel()
    await store.close()


def test_a_daemon_prunes_100k_rows_while_a_per_second_task_fires_on_time(
    make_daemon, tmp_path: Path
) -> None:
    daemon = make_daemon(
        """
        [tasks.old]
        command = "true"
        [tasks.tick]
        command = "true"
        schedule = "* * * * * *"
        catch_up = "skip"
        """,
        start=False,
        daemon_extra='keep_for = "30d"',
    )
    daemon.data_dir.mkdir(mode=0o700)
    asyncio.run(seed_history(f"sqlite+aiosqlite:///{daemon.data_dir / 'cronwarden.db'}", 100_000))
    daemon.start()
    info = wait_for(
        lambda: (body := daemon.get("/api/info").body)["retention"] and body,
        timeout=240,
        what="the first retention pass",
    )
    report = info["retention"]
    assert report["deleted_runs"] == 100_000 and report["error"] is None
    assert daemon.runs(task_name="old") == []
    # every second of the pass had its fire, each started promptly
    ticks = [r for r in daemon.runs(task_name="tick") if r["status"] == "ended"]
    window_start = info["started_at"]
    fires = sorted(r["scheduled_for"] for r in ticks if r["scheduled_for"] >= window_start)
    seconds = [datetime.fromisoformat(f.replace("Z", "+00:00")) for f in fires]
    assert len(seconds) >= report["duration_ms"] // 1000 - 1
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(seconds))
    late = [
        datetime.fromisoformat(r["start_at"].replace("Z", "+00:00"))
        - datetime.fromisoformat(r["scheduled_for"].replace("Z", "+00:00"))
        for r in ticks
    ]
    assert max(late) < timedelta(seconds=1), sorted(late)[-5:]
    assert all(r["end_reason"] == "success" for r in ticks)
