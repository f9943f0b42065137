"""Artifact listings in the database (store/artifacts.py) on a SQLite file and on
PostgreSQL, and retention of the files: a listing is replaced whole, read in order, a
task's kept bytes are summed per run of one node newest first, removed runs say so;
retention deletes a run's listing and directory with its row, and the directories of
runs whose row another node deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cronwarden.artifacts.stock import Entry
from cronwarden.config import parse_config
from cronwarden.live_config import LiveConfig
from cronwarden.model import Status
from cronwarden.retention import Retention
from cronwarden.run_record import RunRecord
from cronwarden.store import Store
from cronwarden.store.artifacts import SqlArtifacts

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def ended(i: int, task: str = "t", node: str = "n1", age: timedelta = timedelta(0)) -> RunRecord:
    created = NOW - age + timedelta(seconds=i)
    return RunRecord(
        id=f"00000000-0000-7000-8000-{i:012d}",
        task_name=task,
        status=Status.ENDED.value,
        end_reason="success",
        triggered_by="api",
        created_at=created,
        end_at=created,
        node=node,
        task_hash="h",
    )


def kept(name: str, size: int) -> Entry:
    return Entry(name, size, sha256=f"{size:064x}")


async def test_a_listing_is_replaced_whole_and_read_in_order(store: Store) -> None:
    shelf = SqlArtifacts(store.engine)
    run = ended(1)
    await store.claim([run])
    long_name = "/".join(["d" * 200] * 8) + "/f.txt"  # longer than an index key may be
    first = [kept("z.txt", 3), Entry("link", None, dropped="a symbolic link"), kept(long_name, 9)]
    await shelf.record(run.id, run.task_name, first)
    assert await shelf.listing(run.id) == first
    assert await shelf.find(run.id, long_name) == first[2]
    assert await shelf.find(run.id, "nope") is None
    again = [kept("a.txt", 1)]  # stock taken again after a crash: no duplicates
    await shelf.record(run.id, run.task_name, again)
    assert await shelf.listing(run.id) == again
    assert await shelf.listing(ended(2).id) == []


async def test_kept_bytes_per_run_of_one_node_newest_first_and_removal(store: Store) -> None:
    shelf = SqlArtifacts(store.engine)
    runs = [ended(1), ended(2), ended(3, node="n2"), ended(4), ended(5, task="other")]
    await store.claim(runs)
    for run, entries in zip(
        runs,
        [
            [kept("a", 10), kept("b", 5)],
            [kept("a", 7), Entry("big", 99, dropped="past max_artifacts_size")],
            [kept("a", 1000)],  # another node's disk
            [kept("a", 1)],
            [kept("a", 50)],
        ],
        strict=True,
    ):
        await shelf.record(run.id, run.task_name, entries)
    assert await shelf.kept_sizes("t", "n1") == [(runs[3].id, 1), (runs[1].id, 7), (runs[0].id, 15)]
    assert await shelf.kept_sizes("t", "n2") == [(runs[2].id, 1000)]

    await shelf.mark_removed([runs[0].id], "removed to keep the task within keep_artifacts_size")
    assert await shelf.kept_sizes("t", "n1") == [(runs[3].id, 1), (runs[1].id, 7)]
    listed = await shelf.listing(runs[0].id)
    assert [(e.name, e.size, e.kept) for e in listed] == [("a", 10, False), ("b", 5, False)]
    assert all("keep_artifacts_size" in (e.dropped or "") for e in listed)
    untouched = await shelf.listing(runs[1].id)
    assert untouched[1].dropped == "past max_artifacts_size"  # its own reason kept


async def test_retention_deletes_listings_and_files_with_their_runs(
    store: Store, tmp_path: Path
) -> None:
    config = parse_config(
        '[tasks.t]\ncommand = "true"\nkeep_runs = 1\n', tmp_path / "cronwarden.toml"
    )
    logs, root = tmp_path / "logs", tmp_path / "artifacts"
    logs.mkdir()
    shelf = SqlArtifacts(store.engine)

    class Clock:
        def now(self) -> datetime:
            return NOW + timedelta(days=1)

    old, new = ended(1), ended(2)
    await store.claim([old, new])
    for run in (old, new):
        (root / run.id / "sub").mkdir(parents=True)
        (root / run.id / "sub" / "f.bin").write_bytes(b"x" * 100)
        await shelf.record(run.id, run.task_name, [kept("sub/f.bin", 100)])
    gone_elsewhere = "00000000-0000-7000-8000-00000000ffff"  # its row went on another node
    (root / gone_elsewhere).mkdir()
    (root / gone_elsewhere / "f").write_bytes(b"y" * 50)

    report = await Retention(
        store,
        LiveConfig(config),
        logs,
        Clock(),
        artifacts_root=root,  # type: ignore[arg-type]
    ).run_pass()

    assert report.error is None and report.deleted_runs == 1
    assert report.freed_bytes == 150
    assert sorted(p.name for p in root.iterdir()) == [new.id]
    assert await shelf.listing(old.id) == []
    assert await shelf.listing(new.id) == [kept("sub/f.bin", 100)]
