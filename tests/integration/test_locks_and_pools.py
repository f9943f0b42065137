"""Named locks and pools on real daemons: on one host (SQLite, PostgreSQL) and across
three nodes sharing PostgreSQL.  Overlap is judged by the processes' own clocks: each
run writes when it started and when it ended."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for  # type: ignore[import-not-found]

LEASE = 2.0


def recorded(name: str, spans: Path, work: str = "sleep 0.2") -> str:
    """A command that writes ``start end`` by its own clock to ``spans``."""
    return (
        f"s=$(date +%s.%N); {work}; "
        f'echo "$CRONWARDEN_TASK $CRONWARDEN_RUN_ID $s $(date +%s.%N)" >> {spans}'
    )


def read_spans(spans: Path) -> list[tuple[str, str, float, float]]:
    if not spans.exists():
        return []
    rows = []
    for line in spans.read_text().splitlines():
        task, run_id, start, end = line.split()
        rows.append((task, run_id, float(start), float(end)))
    return rows


def most_at_once(rows: list[tuple[str, str, float, float]]) -> int:
    """The most runs whose spans overlap at one instant."""
    edges = sorted([(start, 1) for *_, start, _ in rows] + [(end, -1) for *_, end in rows])
    now = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        now += step
        peak = max(peak, now)
    return peak


def every_second(name: str, spans: Path, extra: str) -> str:
    return f"""
    [tasks.{name}]
    command = '{recorded(name, spans)}'
    schedule = "* * * * * *"
    timezone = "UTC"
    overlap = "queue"
    {extra}
    """


@pytest.mark.both_databases
def test_tasks_sharing_a_lock_never_run_at_once(make_daemon, tmp_path: Path) -> None:
    spans = tmp_path / "spans"
    tasks = "".join(every_second(n, spans, 'locks = ["repo"]') for n in ("a", "b", "c"))
    daemon = make_daemon(tasks)
    wait_for(lambda: len(read_spans(spans)) >= 24, 30, "two dozen runs under the lock")
    assert daemon.stop() == 0
    rows = read_spans(spans)
    assert most_at_once(rows) == 1, rows
    assert {task for task, *_ in rows} == {"a", "b", "c"}


@pytest.mark.both_databases
def test_a_skipped_run_names_the_holder_and_a_queued_one_waits(make_daemon, gate) -> None:
    daemon = make_daemon(
        f"""
    [tasks.holder]
    command = "{gate.wait_command}"
    locks = ["repo"]

    [tasks.skipper]
    command = "true"
    locks = ["repo"]
    overlap = "skip"

    [tasks.waiter]
    command = "true"
    locks = ["repo"]
    overlap = "queue"
    """
    )
    holder = daemon.trigger("holder")
    daemon.wait_run(holder["id"], lambda r: r["status"] == "running")
    skipped = daemon.wait_run(daemon.trigger("skipper")["id"])
    assert skipped["end_reason"] == "skipped"
    assert f"lock repo is held by run {holder['id']} of task holder on node" in skipped["error"]
    waiter = daemon.trigger("waiter")
    assert daemon.wait_run(waiter["id"], lambda r: True)["status"] == "pending"
    gate.open()
    assert daemon.wait_run(waiter["id"])["end_reason"] == "success"
    ended = daemon.get(f"/api/runs/{holder['id']}").body
    started = daemon.get(f"/api/runs/{waiter['id']}").body["start_at"]
    assert started >= ended["end_at"]
    metrics = daemon.get("/metrics").body
    metrics = metrics if isinstance(metrics, str) else metrics.decode()
    assert 'cronwarden_lock_wait_seconds_count{hold="lock:repo"} 2.0' in metrics, metrics
    assert "# TYPE cronwarden_pool_in_use gauge" in metrics


def test_a_pool_limits_its_tasks_together(make_daemon, tmp_path: Path) -> None:
    spans = tmp_path / "spans"
    tasks = "[pools.two]\nsize = 2\n" + "".join(
        every_second(f"t{i}", spans, 'pool = "two"') for i in range(5)
    )
    daemon = make_daemon(tasks)
    wait_for(lambda: len(read_spans(spans)) >= 20, 30, "twenty runs in the pool")
    assert daemon.stop() == 0
    rows = read_spans(spans)
    assert most_at_once(rows) == 2, rows


def start_nodes(make_daemon, tasks: str, url: str, count: int = 3) -> list[Any]:  # type: ignore[no-untyped-def]
    extra = f'database = "{url}"\nnode_lease = "{LEASE:g}s"\n'
    return [make_daemon(tasks, daemon_extra=extra) for _ in range(count)]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_lock_and_a_pool_hold_across_three_nodes(make_daemon, pg_admin, tmp_path) -> None:
    """Two tasks sharing a lock, each every second for 30 s, and a pool of 2 over five
    tasks, on three nodes: never overlapping, never three at once."""
    locked, pooled = tmp_path / "locked", tmp_path / "pooled"
    tasks = (
        "[pools.two]\nsize = 2\n"
        + "".join(every_second(n, locked, 'locks = ["repo"]') for n in ("a", "b"))
        + "".join(every_second(f"p{i}", pooled, 'pool = "two"') for i in range(5))
    )
    nodes = start_nodes(make_daemon, tasks, pg_admin.create())
    wait_for(lambda: len(read_spans(locked)) >= 60, 60, "30 s of both locked tasks")
    ran_on = {r["node"] for name in ("a", "b") for r in nodes[0].runs(task_name=name, limit=1000)}
    for node in nodes:
        assert node.stop() == 0
    locked_rows, pooled_rows = read_spans(locked), read_spans(pooled)
    assert most_at_once(locked_rows) == 1, locked_rows
    assert most_at_once(pooled_rows) <= 2, pooled_rows
    assert len(pooled_rows) >= 30
    assert len(ran_on) >= 2, ran_on  # the lock really was shared between nodes


@pytest.mark.postgres
@pytest.mark.faults
@pytest.mark.timeout(240)
def test_a_killed_node_s_lock_is_freed_by_its_takeover(make_daemon, pg_admin, gate) -> None:
    tasks = f"""
    [tasks.holder]
    command = "{gate.wait_command}"
    locks = ["repo"]

    [tasks.waiter]
    command = "true"
    locks = ["repo"]
    overlap = "queue"
    """
    first, second = start_nodes(make_daemon, tasks, pg_admin.create(), count=2)
    holder = first.trigger("holder")
    first.wait_run(holder["id"], lambda r: r["status"] == "running")
    waiter = second.trigger("waiter")
    assert second.wait_run(waiter["id"], lambda r: True)["status"] == "pending"
    first.kill9()
    crashed = second.wait_run(holder["id"], timeout=LEASE + 10)
    assert crashed["end_reason"] == "crashed"
    started = second.wait_run(waiter["id"])
    assert started["end_reason"] == "success" and started["start_at"] >= crashed["end_at"]
