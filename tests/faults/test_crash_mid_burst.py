"""kill -9 of the daemon in the middle of a burst (issue 24's fault suite): after the
restart every fire of every task ran once or is recorded missed, none twice, and no run
is left pending or running: rows claimed ahead and not started end crashed, processes
still alive are re-adopted, fires of the downtime go through catch-up."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest
from conftest import wait_for  # type: ignore[import-not-found]
from faults_support import per_second, unaccounted, z  # type: ignore[import-not-found]

pytestmark = pytest.mark.faults

TASKS = 40


def config() -> str:
    return "".join(
        f"""
[tasks.burst-{i:02d}]
command = "sleep 0.3"
schedule = "* * * * * *"
timezone = "UTC"
catch_up = "all"
"""
        for i in range(TASKS)
    )


def all_runs(daemon: Any) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = daemon.get(f"/api/runs?limit=1000{cursor}").body
        runs += page["runs"]
        if not page["has_next"]:
            return runs
        cursor = f"&cursor={page['next_cursor']}"


@pytest.mark.timeout(150)
def test_kill9_mid_burst_accounts_for_every_fire(make_daemon) -> None:
    daemon = make_daemon(config(), shutdown_timeout="5s")
    wait_for(lambda: len(daemon.runs(task_name="burst-00")) >= 3, what="three bursts")
    # Right after a second's burst begins: rows claimed, processes being spawned.
    time.sleep(1.05 - time.time() % 1)
    daemon.kill9()
    time.sleep(2)  # down across two more bursts
    daemon.start()
    started_again = time.time()
    wait_for(
        lambda: all(
            z(r["scheduled_for"]).timestamp() > started_again + 1
            for r in [daemon.runs(task_name="burst-00", limit=1)[0]]
        ),
        what="bursts after the restart",
    )
    assert daemon.stop() == 0
    daemon.start()  # a quiet life to read the history; its own fires come after `last`
    runs = all_runs(daemon)
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_task[run["task_name"]].append(run)
    assert len(by_task) == TASKS
    problems = {}
    for name, task_runs in by_task.items():
        fires = sorted(z(r["scheduled_for"]) for r in task_runs if r["scheduled_for"])
        # the window: the task's first fire to the last fire of the second life
        window = [f for f in per_second(fires[0], fires[-1]) if f.timestamp() < started_again + 1]
        found = unaccounted(
            [r for r in task_runs if z(r["scheduled_for"]).timestamp() < started_again + 1],
            window,
        )
        if found:
            problems[name] = found
    assert not problems, problems
    # A catch-up fire still waiting when the second life is stopped ends "stopped" with
    # the shutdown's reason: recorded, not lost (a loaded machine works catch-up slowly).
    shut_out = [r for r in runs if r["end_reason"] == "stopped"]
    assert all(r["error"] == "the daemon shut down before it started" for r in shut_out), shut_out
    reasons = {r["end_reason"] for r in runs if r["status"] == "ended"}
    assert reasons <= {"success", "crashed", "missed", "skipped", "stopped"}, reasons
