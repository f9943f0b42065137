"""Run endpoints users of other run-history APIs expect: history of a removed task,
``?wait=`` on a trigger, and reruns under the same admission (issue: the API, complete)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.both_databases

CLI = [sys.executable, "-m", "cronwarden"]
UNKNOWN_RUN = "0192f5e4-7c1a-7b3e-9d2a-5f1e2c3d4b5a"


def test_a_removed_task_keeps_its_history(make_daemon) -> None:
    gone = '[tasks.gone]\ncommand = "echo bye"\n'
    daemon = make_daemon(gone + '[tasks.kept]\ncommand = "echo hi"\n')
    run = daemon.wait_run(daemon.trigger("gone")["id"])
    daemon.config.write_text(daemon.config.read_text().replace(gone, ""))
    assert daemon.post("/api/reload").body["removed"] == ["gone"]
    history = daemon.get("/api/tasks/gone/runs")
    assert history.status == 200 and [r["id"] for r in history.body["runs"]] == [run["id"]]
    never = daemon.get("/api/tasks/never-was/runs")
    assert never.status == 404 and "never-was" in never.body["detail"]
    assert daemon.post("/api/tasks/gone/runs").status == 404  # history, not a trigger


def test_wait_answers_at_the_end_or_with_the_run_as_it_is(make_daemon, gate) -> None:
    daemon = make_daemon(
        f"""
    [tasks.quick]
    command = "exit 3"

    [tasks.held]
    command = "{gate.wait_command}"
    """
    )
    ended = daemon.post("/api/tasks/quick/runs?wait=30")
    assert ended.status == 201 and ended.body["status"] == "ended"
    assert ended.body["exit_code"] == 3 and ended.body["end_reason"] == "failed"
    assert ended.headers["Location"] == f"/api/runs/{ended.body['id']}"
    going = daemon.post("/api/tasks/held/runs?wait=0.3")
    assert going.status == 202 and going.body["status"] in ("pending", "running")
    gate.open()
    assert daemon.wait_run(going.body["id"])["end_reason"] == "success"
    for bad in ("301", "-1", "soon", "nan"):
        answer = daemon.post(f"/api/tasks/quick/runs?wait={bad}")
        assert answer.status == 422 and answer.body["errors"][0]["field"] == "wait", bad
    assert daemon.post("/api/tasks/quick/runs?wiat=3").status == 422


def test_rerun_repeats_a_run_under_the_same_admission(make_daemon, gate) -> None:
    daemon = make_daemon(
        f"""
    [tasks.deploy]
    command = "test -n \\"$CRONWARDEN_PARAM_who\\" && {gate.wait_command}"
    params = ["who"]
    overlap = "skip"
    """
    )
    first = daemon.trigger("deploy", {"who": "ann"})
    daemon.wait_run(first["id"], until=lambda r: r["status"] == "running")
    refused = daemon.post(f"/api/runs/{first['id']}/rerun")
    assert refused.status == 409 and "overlap = skip" in refused.body["detail"]
    gate.open()
    daemon.wait_run(first["id"])
    again = daemon.post(f"/api/runs/{first['id']}/rerun")
    assert again.status == 201, again
    assert again.body["rerun_of"] == first["id"] and again.body["retry_of"] is None
    assert again.body["params"] == {"who": "ann"} and again.body["triggered_by"] == "api"
    gate.open()
    assert daemon.wait_run(again.body["id"])["end_reason"] == "success"
    assert daemon.post(f"/api/runs/{UNKNOWN_RUN}/rerun").status == 404
    assert daemon.post("/api/runs/not-a-run/rerun").status == 400


def test_cli_rerun_waits_and_exits_with_the_runs_code(make_daemon) -> None:
    daemon = make_daemon('[tasks.flaky]\ncommand = "exit 4"\n')
    run = daemon.wait_run(daemon.trigger("flaky")["id"])
    cli = subprocess.run(
        [*CLI, "rerun", run["id"], "--wait", "--url", daemon.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 4, cli.stderr
    new_id = cli.stdout.split()[0]
    assert new_id != run["id"] and daemon.get(f"/api/runs/{new_id}").body["rerun_of"] == run["id"]
    missing = subprocess.run(
        [*CLI, "rerun", UNKNOWN_RUN, "--url", daemon.url], capture_output=True, text=True
    )
    assert missing.returncode == 1 and "404" in missing.stderr


def test_run_lists_sort_search_and_take_day_words(make_daemon) -> None:
    daemon = make_daemon(
        '[tasks.ok]\ncommand = "true"\n\n[tasks.slow]\ncommand = "sleep 0.3; exit 2"\n'
    )
    runs = [daemon.wait_run(daemon.trigger(name)["id"]) for name in ("ok", "slow", "ok")]
    by_duration = daemon.get("/api/runs?sort_field=duration_ms&sort_direction=desc").body
    assert by_duration["runs"][0]["id"] == runs[1]["id"]
    by_exit = daemon.get("/api/runs?sort_field=exit_code&sort_direction=asc&limit=2").body
    assert [r["exit_code"] for r in by_exit["runs"]] == [0, 0] and by_exit["has_next"]
    rest = daemon.get(
        f"/api/runs?sort_field=exit_code&sort_direction=asc&cursor={by_exit['next_cursor']}"
    ).body
    assert [r["exit_code"] for r in rest["runs"]] == [2]
    # RunWisp clients send empty strings for "the default".
    default = daemon.get("/api/runs?sort_field=&sort_direction=").body
    assert [r["id"] for r in default["runs"]] == [r["id"] for r in reversed(runs)]
    bad = daemon.get("/api/runs?sort_field=pid")
    assert bad.status == 422 and bad.body["errors"][0]["field"] == "sort_field"
    other = daemon.get(f"/api/runs?sort_field=end_at&cursor={by_exit['next_cursor']}")
    assert other.status == 400 and other.body["type"].endswith("invalid-cursor")
    assert [r["task_name"] for r in daemon.get("/api/runs?search=SLO").body["runs"]] == ["slow"]
    date_then = datetime.now(UTC).date()
    today = daemon.get("/api/runs?start_date=today&end_date=today").body["runs"]
    until_yesterday = daemon.get("/api/runs?end_date=yesterday").body["runs"]
    since_yesterday = daemon.get("/api/runs?start_date=yesterday").body["runs"]
    if (
        datetime.now(UTC).date()
        == date_then
        == datetime.fromisoformat(runs[0]["created_at"][:10]).date()
    ):
        # (unless midnight UTC passed during the test)
        assert len(today) == 3 and until_yesterday == [] and len(since_yesterday) == 3
    assert len(daemon.get("/api/runs?start_date=1%20hours%20ago&end_date=now").body["runs"]) == 3
    day = runs[0]["created_at"][:10]  # a date-only end_date includes that whole day
    assert len(daemon.get(f"/api/runs?start_date={day}&end_date={day}").body["runs"]) == 3
    wrong = daemon.get("/api/runs?end_date=tomorrow")
    assert wrong.status == 422 and "yesterday" in wrong.body["errors"][0]["message"]


def test_task_stats_add_up_the_history(make_daemon) -> None:
    daemon = make_daemon(
        '[tasks.job]\ncommand = "exit $CRONWARDEN_PARAM_code"\nparams = ["code"]\n'
    )
    ended = [
        daemon.wait_run(daemon.trigger("job", {"code": code})["id"])
        for code in ("0", "0", "0", "1")
    ]
    stats = daemon.get("/api/tasks/job/stats")
    assert stats.status == 200, stats
    body = stats.body
    assert body["runs"] == 4 and body["active"] == 0 and body["since"] is None
    assert body["by_end_reason"] == {"success": 3, "failed": 1}
    assert body["success_rate"] == 0.75
    durations = sorted(r["duration_ms"] for r in ended)
    assert body["duration_ms"] == {
        "p50": durations[1],
        "p95": durations[3],
        "max": durations[3],
        "sample": 4,
    }
    assert body["last_success_at"] == ended[2]["end_at"]
    assert body["last_failure_at"] == ended[3]["end_at"]
    later = daemon.get("/api/tasks/job/stats?since=now").body
    assert later["runs"] == 0 and later["success_rate"] is None
    assert later["duration_ms"]["p50"] is None
    assert daemon.get("/api/tasks/nope/stats").status == 404
    assert daemon.get("/api/tasks/job/stats?since=whenever").status == 422


def test_cli_runs_sorted_and_searched_and_stats(make_daemon) -> None:
    daemon = make_daemon('[tasks.fast]\ncommand = "true"\n\n[tasks.slow]\ncommand = "sleep 0.2"\n')
    for name in ("slow", "fast", "fast"):
        daemon.wait_run(daemon.trigger(name)["id"])

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args, "--url", daemon.url], capture_output=True, text=True, timeout=60
        )

    longest = json.loads(cli("runs", "--sort", "duration_ms:desc", "--json").stdout)
    assert longest["runs"][0]["task_name"] == "slow"
    found = json.loads(cli("runs", "--search", "SLO", "--json").stdout)
    assert [r["task_name"] for r in found["runs"]] == ["slow"]
    bad = cli("runs", "--sort", "pid")
    assert bad.returncode == 2 and "duration_ms" in bad.stderr
    shown = cli("stats", "fast")
    assert shown.returncode == 0, shown.stderr
    assert "2 runs" in shown.stdout and "success rate: 100.0%" in shown.stdout
    assert json.loads(cli("stats", "fast", "--json").stdout)["by_end_reason"] == {"success": 2}
