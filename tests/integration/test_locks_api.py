"""What users see of named locks and pools on a real daemon: GET /api/locks (who holds
a lock, who waits for it, a pool's size), the tasks' locks and pool in the task API,
and the CLI's ``locks`` table and ``explain`` lines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
from conftest import Daemon, Gate, wait_for  # type: ignore[import-not-found]

CLI = [sys.executable, "-m", "cronwarden"]
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def tasks_with(gate: Gate) -> str:
    return f"""
    [pools.workers]
    size = 2

    [pools.unused]
    size = 5

    [tasks.backup]
    command = "{gate.wait_command}"
    locks = ["repo", "disk"]
    overlap = "queue"

    [tasks.prune]
    command = "true"
    locks = ["repo"]
    overlap = "queue"

    [tasks.crunch]
    command = "true"
    pool = "workers"

    [tasks.plain]
    command = "true"
    """


def cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, cwd=daemon.workdir
    )


def locks_of(daemon: Daemon) -> dict[tuple[str, str], dict[str, Any]]:
    answer = daemon.get("/api/locks")
    assert answer.status == 200, answer
    return {(lock["kind"], lock["name"]): lock for lock in answer.body["locks"]}


@pytest.mark.both_databases
def test_locks_show_holders_waiters_and_pool_sizes(make_daemon, gate: Gate) -> None:
    daemon = make_daemon(tasks_with(gate))
    node = daemon.get("/api/info").body["node"]
    listed = daemon.get("/api/locks").body["locks"]
    assert [(lock["kind"], lock["name"]) for lock in listed] == [
        ("lock", "disk"),
        ("lock", "repo"),
        ("pool", "unused"),
        ("pool", "workers"),
    ]  # sorted by kind, then name; a pool no task names is listed too
    assert all(lock["holders"] == [] and lock["waiting"] == [] for lock in listed)

    holder = daemon.trigger("backup")
    daemon.wait_run(holder["id"], lambda r: r["status"] == "running")
    waiter = daemon.trigger("prune")
    locks = wait_for(
        lambda: (seen := locks_of(daemon))[("lock", "repo")]["waiting"] and seen,
        what="prune listed as waiting for repo",
    )
    repo = locks[("lock", "repo")]
    assert (repo["size"], repo["tasks"]) == (1, ["backup", "prune"])
    [held] = repo["holders"]
    assert (held["run_id"], held["task_name"], held["node"]) == (holder["id"], "backup", node)
    assert ISO_Z.match(held["since"]), held
    [waiting] = repo["waiting"]
    assert (waiting["run_id"], waiting["task_name"]) == (waiter["id"], "prune")
    assert ISO_Z.match(waiting["since"]), waiting
    assert daemon.get(f"/api/runs/{waiter['id']}").body["status"] == "pending"
    disk = locks[("lock", "disk")]
    assert [h["run_id"] for h in disk["holders"]] == [holder["id"]] and disk["waiting"] == []
    workers = locks[("pool", "workers")]
    assert (workers["size"], workers["tasks"], workers["holders"]) == (2, ["crunch"], [])
    assert locks[("pool", "unused")]["tasks"] == []

    printed = cli(daemon, "locks", "--url", daemon.url)
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "SIZE", "HELD-BY", "WAITING"]
    repo_line = next(line for line in lines if line.startswith("repo "))
    assert repo_line.split() == ["repo", "lock", "1", "backup", holder["id"], "on", node, "1"]
    assert next(line for line in lines if line.startswith("workers ")).split() == [
        "workers",
        "pool",
        "2",
        "-",
        "0",
    ]
    as_json = cli(daemon, "locks", "--url", daemon.url, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert [lock["name"] for lock in json.loads(as_json.stdout)["locks"]] == [
        "disk",
        "repo",
        "unused",
        "workers",
    ]

    gate.open()
    assert daemon.wait_run(waiter["id"])["end_reason"] == "success"  # served once freed
    after = locks_of(daemon)[("lock", "repo")]
    assert after["holders"] == [] and after["waiting"] == []


def test_tasks_carry_their_locks_and_pool(make_daemon, gate: Gate) -> None:
    daemon = make_daemon(tasks_with(gate))
    listed = {t["name"]: t for t in daemon.get("/api/tasks").body["tasks"]}
    assert (listed["backup"]["locks"], listed["backup"]["pool"]) == (["repo", "disk"], None)
    assert (listed["crunch"]["locks"], listed["crunch"]["pool"]) == ([], "workers")
    assert (listed["plain"]["locks"], listed["plain"]["pool"]) == ([], None)
    one = daemon.get("/api/tasks/crunch").body
    assert (one["locks"], one["pool"]) == ([], "workers")

    spec = daemon.get("/openapi.json").body
    task_schema = spec["components"]["schemas"]["TaskOut"]
    assert {"locks", "pool"} <= set(task_schema["required"])
    assert (
        "/api/locks" in spec["paths"] and "503" in spec["paths"]["/api/locks"]["get"]["responses"]
    )

    explained = cli(daemon, "explain", "-c", str(daemon.config), "backup")
    assert explained.returncode == 0, explained.stderr
    assert "  locks: repo, disk (no other run naming one runs at the same time)" in (
        explained.stdout.splitlines()
    )
    explained = cli(daemon, "explain", "-c", str(daemon.config), "crunch", "--json")
    assert explained.returncode == 0, explained.stderr
    shown = json.loads(explained.stdout)
    assert (shown["locks"], shown["pool"]) == ([], "workers")
    explained = cli(daemon, "explain", "-c", str(daemon.config), "crunch")
    assert "  pool: workers (at most 2 runs of its tasks at once)" in explained.stdout


def test_no_locks_configured_is_an_empty_list(make_daemon) -> None:
    daemon = make_daemon('[tasks.t]\ncommand = "true"\n')
    assert daemon.get("/api/locks").body == {"locks": []}
    printed = cli(daemon, "locks", "--url", daemon.url)
    assert printed.returncode == 0 and printed.stdout.split() == [
        "NAME",
        "KIND",
        "SIZE",
        "HELD-BY",
        "WAITING",
    ]
