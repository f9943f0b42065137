"""max_concurrent_runs in a real daemon: a burst of 500 tasks due at one instant never
has more than the limit of processes alive (by the processes' own clocks), every fire
runs, and runs waiting for a place are pending and can be stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import wait_for  # type: ignore[import-not-found]

TASKS = 500
LIMIT = 20


def test_a_500_task_burst_stays_under_the_host_limit(make_daemon, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    at = datetime.now(UTC) + timedelta(seconds=12)
    schedule = f"{at.second} {at.minute} {at.hour} * * *"
    body = "\n".join(
        f'[tasks.t{i:03d}]\nschedule = "{schedule}"\n'
        f'command = "date +%s%N > {marks}/t{i:03d}.start; sleep 0.2; '
        f'date +%s%N > {marks}/t{i:03d}.end"\n'
        for i in range(TASKS)
    )
    daemon = make_daemon(
        '[defaults]\ntimezone = "UTC"\ncatch_up = "skip"\n' + body,
        daemon_extra=f"max_concurrent_runs = {LIMIT}",
    )
    wait_for(lambda: len(list(marks.glob("*.end"))) == TASKS, timeout=120, what="all 500 runs")
    runs = wait_for(
        lambda: (r := daemon.runs(status="ended")) and len(r) == TASKS and r,
        what="500 recorded ends",
    )
    assert {r["end_reason"] for r in runs} == {"success"}
    assert {r["scheduled_for"][:19] for r in runs} == {at.strftime("%Y-%m-%dT%H:%M:%S")}
    edges = []
    for i in range(TASKS):
        edges.append((int((marks / f"t{i:03d}.start").read_text()), 1))
        edges.append((int((marks / f"t{i:03d}.end").read_text()), -1))
    alive = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        alive += step
        peak = max(peak, alive)
    assert peak <= LIMIT
    assert peak >= LIMIT // 2  # the limit is used, not a crawl one by one


def test_a_run_waiting_for_a_place_is_pending_and_can_be_stopped(make_daemon, gate) -> None:
    daemon = make_daemon(
        f'[tasks.hold]\ncommand = "{gate.wait_command}"\n[tasks.next]\ncommand = "true"\n',
        daemon_extra="max_concurrent_runs = 1",
    )
    holding = daemon.trigger("hold")
    daemon.wait_run(holding["id"], until=lambda r: r["status"] == "running")
    waiting = daemon.trigger("next")
    third = daemon.trigger("next")
    metrics = daemon.get("/metrics").body
    assert 'cronwarden_runs_waiting{task="next"} 2.0' in metrics
    assert daemon.get(f"/api/runs/{waiting['id']}").body["status"] == "pending"
    assert daemon.post(f"/api/runs/{waiting['id']}/stop").status == 202
    stopped = daemon.wait_run(waiting["id"])
    assert stopped["end_reason"] == "stopped" and "max_concurrent_runs" in stopped["error"]
    assert stopped["pid"] is None
    gate.open()
    assert daemon.wait_run(third["id"])["end_reason"] == "success"
