"""Where a job runs, on three real daemons sharing one PostgreSQL database: a task with
``nodes`` fires and is triggered only on the nodes it names (another node answers 409
naming them), and an ``on_every_node`` task runs each fire once on every node, a node
that joins late only the fires after it joined (cronwarden/placement.py)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from conftest import wait_for  # type: ignore[import-not-found]
from test_several_hosts import (  # type: ignore[import-not-found]
    LEASE,
    events_named,
    running_retry,
    z,
)

pytestmark = pytest.mark.postgres


def named_nodes(make_daemon, tasks: str, url: str, names: list[str]) -> list:  # type: ignore[no-untyped-def, type-arg]
    """Daemons on one database, each with its ``node`` name."""
    return [
        make_daemon(
            tasks, daemon_extra=f'database = "{url}"\nnode_lease = "{LEASE:g}s"\nnode = "{name}"\n'
        )
        for name in names
    ]


@pytest.mark.timeout(120)
def test_a_task_runs_and_is_triggered_only_on_the_nodes_it_names(make_daemon, pg_admin) -> None:
    tasks = """
    [tasks.web_tick]
    schedule = "* * * * * *"
    command = "true"
    nodes = ["web-*"]

    [tasks.web_only]
    command = "echo here"
    nodes = ["web-*", "edge"]
    """
    web1, web2, db1 = named_nodes(make_daemon, tasks, pg_admin.create(), ["web-1", "web-2", "db-1"])
    began = datetime.now(UTC)

    # The node the task does not name does not even time it.
    assert db1.get("/api/tasks/web_tick").body["next_run_at"] is None
    assert web1.get("/api/tasks/web_tick").body["next_run_at"] is not None
    task = db1.get("/api/tasks/web_tick").body
    assert task["nodes"] == ["web-*"] and task["on_every_node"] is False

    # A trigger on it: 409, naming the patterns; on a named node it runs there.
    refused = db1.post("/api/tasks/web_only/runs")
    assert refused.status == 409, refused
    assert refused.content_type == "application/problem+json"
    assert "runs only on nodes matching 'web-*', 'edge'" in refused.body["detail"]
    assert "this node is 'db-1'" in refused.body["detail"]
    run = web2.trigger("web_only")
    assert db1.wait_run(run["id"])["node"] == "web-2"
    rerun = db1.post(f"/api/runs/{run['id']}/rerun")
    assert rerun.status == 409 and "'web-*', 'edge'" in rerun.body["detail"]
    assert web1.post(f"/api/runs/{run['id']}/rerun").status in (200, 201, 202)

    # Five seconds of fires: each once, and never on db-1.
    time.sleep(5)
    fires = [
        r
        for r in web1.runs(task_name="web_tick")
        if r["scheduled_for"] and z(r["created_at"]) > began
    ]
    assert len(fires) >= 4
    assert {r["node"] for r in fires} <= {"web-1", "web-2"}
    assert max(Counter(r["scheduled_for"] for r in fires).values()) == 1
    assert all(r["triggered_by"] == "schedule" for r in fires)


@pytest.mark.timeout(180)
def test_an_every_node_task_runs_each_fire_once_per_node_and_not_before_a_node_joined(
    make_daemon, pg_admin
) -> None:
    tasks = """
    [tasks.cleanup]
    schedule = "* * * * * *"
    command = "true"
    on_every_node = true
    overlap = "skip"  # per node: the other nodes' runs of the same fire are theirs
    """
    url = pg_admin.create()
    first = named_nodes(make_daemon, tasks, url, ["a", "b"])
    both_up = datetime.now(UTC)
    time.sleep(4)  # fires the late node must not catch up on
    joined = datetime.now(UTC)
    late = named_nodes(make_daemon, tasks, url, ["c"])[0]
    ready = datetime.now(UTC)
    task = late.get("/api/tasks/cleanup").body
    assert task["on_every_node"] is True and task["nodes"] is None

    # 30 fires after the late node came up, each once on every node.
    start = ready.replace(microsecond=0) + timedelta(seconds=2)
    end = start + timedelta(seconds=29)

    def runs() -> list[dict]:  # type: ignore[type-arg]
        return first[0].runs(task_name="cleanup", limit=1000)

    def fires_done() -> bool:
        done = [r for r in runs() if r["status"] == "ended" and z(r["scheduled_for"]) >= end]
        return len(done) >= 3

    wait_for(fires_done, 60, "the 30th fire on every node")
    per_fire: dict[datetime, list[str]] = defaultdict(list)
    for run in runs():
        per_fire[z(run["scheduled_for"])].append(run["node"])
        assert run["end_reason"] == "success", run
    window = [start + timedelta(seconds=i) for i in range(30)]
    for fire in window:
        assert sorted(per_fire[fire]) == ["a", "b", "c"], (fire, per_fire[fire])

    # The late node ran no fire from before it joined: no catch-up of the others' fires.
    of_late = [r for r in runs() if r["node"] == "c"]
    assert of_late and all(z(r["scheduled_for"]) >= joined for r in of_late)
    assert all(r["triggered_by"] == "schedule" for r in of_late)
    # The first nodes ran every fire between their start and its, each once.
    before = [fire for fire in per_fire if both_up < fire < joined - timedelta(seconds=1)]
    assert len(before) >= 2
    assert all(sorted(per_fire[fire]) == ["a", "b"] for fire in before)


@pytest.mark.timeout(120)
@pytest.mark.faults  # kill -9 of a fleet node
def test_a_dead_node_s_every_node_runs_are_neither_retried_nor_moved_elsewhere(
    make_daemon, pg_admin, gate
) -> None:
    """A maintenance job of a dead host is that host's: the survivor ends its run as
    crashed without retrying it, and leaves its waiting retries for it to come back;
    an ordinary run of the dead node still retries on the survivor."""
    tasks = f"""
    [tasks.cleanup]
    schedule = "* * * * * *"
    command = "{gate.wait_command}"
    on_every_node = true
    overlap = "skip"
    retries = 1
    retry_delay = "1s"

    [tasks.sweep]
    schedule = "* * * * * *"
    command = "false"
    on_every_node = true
    retries = 1
    retry_delay = "1h"

    [tasks.only_a]
    schedule = "* * * * * *"
    command = "false"
    nodes = ["a"]
    retries = 1
    retry_delay = "1h"

    [tasks.plain]
    command = "{gate.wait_command}"
    retries = 1
    retry_delay = "1s"
    """
    a, b = named_nodes(make_daemon, tasks, pg_admin.create(), ["a", "b"])

    def of_a(task: str, status: str) -> list[dict]:  # type: ignore[type-arg]
        return [r for r in b.runs(task_name=task, status=status) if r["node"] == "a"]

    def retries_of_a(task: str) -> list[dict]:  # type: ignore[type-arg]
        # Pending is also a fire whose instant came and that a has not started yet.
        return [r for r in of_a(task, "pending") if r["triggered_by"] == "retry"]

    cleanup = wait_for(lambda: of_a("cleanup", "running"), 15, "a's cleanup running")[0]
    waiting = wait_for(lambda: retries_of_a("sweep"), 15, "a's sweep retry waiting")
    waiting += wait_for(lambda: retries_of_a("only_a"), 15, "a's only_a retry waiting")
    plain = a.trigger("plain")
    a.wait_run(plain["id"], lambda r: r["status"] == "running")

    a.kill9()
    crashed = b.wait_run(cleanup["id"], timeout=LEASE + 15)
    assert crashed["end_reason"] == "crashed" and crashed["node"] == "a"
    assert b.wait_run(plain["id"])["end_reason"] == "crashed"
    retried = wait_for(lambda: running_retry(b, plain), 20, "the ordinary run's retry on b")
    assert retried["node"] == "b"
    assert events_named(b, "run.not_retried_here")
    assert not [r for r in b.runs(task_name="cleanup") if r["retry_of"] == cleanup["id"]]
    # b matches neither a's own fires nor only_a's nodes: their waiting retries are
    # still a's, still waiting.
    assert {r["node"] for r in b.runs(task_name="only_a")} == {"a"}
    for retry in waiting:
        kept = b.get(f"/api/runs/{retry['id']}").body
        assert (kept["node"], kept["status"]) == ("a", "pending"), kept
    gate.open()
