"""The walking skeleton through the API: a real daemon, real processes, real SQLite."""

from __future__ import annotations

import itertools
import time
from datetime import datetime

import pytest
from conftest import DATABASES  # type: ignore[import-not-found]

TASKS = """
[tasks.ok]
command = "echo hello; echo oops >&2"

[tasks.three]
command = "exit 3"

[tasks.slow]
command = "sleep 30"
timeout = "1s"
kill_grace = "2s"

[tasks.stubborn]
command = ["/bin/sh", "-c", "trap '' TERM; sleep 30"]
timeout = "1s"
kill_grace = "1s"

[tasks.argv]
command = ["/bin/echo", "$HOME is not expanded"]

[tasks.every_second]
command = "true"
schedule = "* * * * * *"
"""


@pytest.fixture(scope="module", params=DATABASES)
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    from conftest import Daemon, database_option  # type: ignore[import-not-found]

    workdir = tmp_path_factory.mktemp("skeleton")
    d = Daemon(workdir, TASKS, daemon_extra=database_option(request)).start()
    yield d
    assert d.stop() == 0, d.log()


def parse_z(value: str) -> datetime:
    assert value.endswith("Z") and len(value) == 24, value  # 2026-01-01T00:00:00.000Z
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_trigger_answers_201_and_the_run_succeeds(daemon) -> None:
    resp = daemon.post("/api/tasks/ok/runs")
    assert resp.status == 201
    assert resp.headers["Location"] == f"/api/runs/{resp.body['id']}"
    assert resp.body["task_name"] == "ok" and resp.body["triggered_by"] == "api"
    run = daemon.wait_run(resp.body["id"])
    assert (run["status"], run["end_reason"], run["exit_code"], run["signal"]) == (
        "ended",
        "success",
        0,
        None,
    )
    assert run["attempt"] == 1 and run["pid"] > 0 and run["scheduled_for"] is None
    assert parse_z(run["created_at"]) <= parse_z(run["start_at"]) <= parse_z(run["end_at"])
    assert run["duration_ms"] >= 0 and run["log_size"] == len("hello\noops\n")


def test_output_is_captured_per_stream(daemon) -> None:
    run = daemon.wait_run(daemon.trigger("ok")["id"])
    lines = daemon.get(f"/api/runs/{run['id']}/log").body["lines"]
    assert sorted((ln["stream"], ln["text"]) for ln in lines) == [
        ("stderr", "oops"),
        ("stdout", "hello"),
    ]
    assert sorted(ln["n"] for ln in lines) == [1, 2]


def test_nonzero_exit_is_failed_with_its_code(daemon) -> None:
    run = daemon.wait_run(daemon.trigger("three")["id"])
    assert (run["end_reason"], run["exit_code"], run["signal"]) == ("failed", 3, None)


def test_timeout_sends_term_to_the_group(daemon) -> None:
    started = time.monotonic()
    run = daemon.wait_run(daemon.trigger("slow")["id"])
    assert (run["end_reason"], run["exit_code"], run["signal"]) == ("timeout", None, 15)
    assert time.monotonic() - started < 10


def test_timeout_escalates_to_kill_when_term_is_ignored(daemon) -> None:
    run = daemon.wait_run(daemon.trigger("stubborn")["id"])
    assert (run["end_reason"], run["exit_code"], run["signal"]) == ("timeout", None, 9)
    assert run["duration_ms"] >= 1900  # timeout 1s + kill_grace 1s


def test_argv_command_runs_without_a_shell(daemon) -> None:
    run = daemon.wait_run(daemon.trigger("argv")["id"])
    lines = daemon.get(f"/api/runs/{run['id']}/log").body["lines"]
    assert [ln["text"] for ln in lines] == ["$HOME is not expanded"]


def test_per_second_schedule_fires_each_second(daemon) -> None:
    """Every second has exactly one record: a run, or (if the daemon was starved of CPU
    for longer than a fire may be late) a missed fire.  Lateness itself is measured by
    benchmarks, not asserted here."""
    from conftest import wait_for  # type: ignore[import-not-found]

    def runs() -> list[dict]:
        return daemon.runs(task_name="every_second", sort_direction="asc")

    wait_for(lambda: len(runs()) >= 4, what="four per-second fires")
    rows = runs()
    fires = [parse_z(r["scheduled_for"]) for r in rows]
    assert len(set(fires)) == len(fires)  # no second fired twice
    assert all(f.microsecond == 0 for f in fires)
    steps = {(b - a).total_seconds() for a, b in itertools.pairwise(fires[1:])}
    assert steps == {1.0}, fires  # and none was skipped without a record
    for run in rows:
        if run["status"] == "ended" and run["end_reason"] != "missed":
            assert run["end_reason"] == "success", run
            lateness = parse_z(run["start_at"]) - parse_z(run["scheduled_for"])
            assert lateness.total_seconds() < 5, run  # a gross error, not a latency bound


def test_run_list_filters_and_paginates(daemon) -> None:
    for _ in range(3):
        daemon.wait_run(daemon.trigger("three")["id"])
    page = daemon.get("/api/runs?task_name=three&limit=2&total=true").body
    assert set(page) == {"runs", "next_cursor", "has_next", "prev_cursor", "total"}
    assert len(page["runs"]) == 2 and page["has_next"] and page["total"] >= 3
    seen = [r["id"] for r in page["runs"]]
    while page["has_next"]:
        page = daemon.get(f"/api/runs?task_name=three&limit=2&cursor={page['next_cursor']}").body
        seen += [r["id"] for r in page["runs"]]
    assert len(seen) == len(set(seen)) >= 3
    created = [r["created_at"] for r in daemon.runs(task_name="three")]
    assert created == sorted(created, reverse=True)
    failed = daemon.get("/api/runs?status=ended&end_reason=failed&limit=1000").body["runs"]
    assert failed and all(r["end_reason"] == "failed" for r in failed)
    assert "total" not in daemon.get("/api/runs?limit=1").body


def test_tasks_are_listed_with_next_fire(daemon) -> None:
    tasks = {t["name"]: t for t in daemon.get("/api/tasks").body["tasks"]}
    assert set(tasks) == {"ok", "three", "slow", "stubborn", "argv", "every_second"}
    assert tasks["every_second"]["next_run_at"] is not None
    assert tasks["ok"]["next_run_at"] is None and tasks["ok"]["schedule"] is None
    assert daemon.get("/api/tasks/ok").body["name"] == "ok"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/runs/not-a-uuid", 400),
        ("GET", "/api/runs/01a209fe-c188-7629-be5b-959fe454c0b2", 404),
        ("POST", "/api/tasks/nope/runs", 404),
        ("GET", "/api/tasks/nope", 404),
        ("GET", "/api/nothing-here", 404),
        ("DELETE", "/api/runs", 405),
        ("GET", "/api/runs?limit=0", 422),
        ("GET", "/api/runs?limit=abc", 422),
        ("GET", "/api/runs?status=sleeping", 422),
        ("GET", "/api/runs?bogus=1", 422),
        ("GET", "/api/runs?cursor=garbage", 400),
        ("GET", "/api/runs?start_date=yesterday-ish", 422),
    ],
)
def test_errors_are_problem_json(daemon, method: str, path: str, status: int) -> None:
    resp = daemon.request(method, path)
    assert resp.status == status, resp
    assert resp.content_type == "application/problem+json"
    assert set(resp.body) == {"type", "title", "status", "detail", "instance", "errors"}
    assert resp.body["status"] == status and resp.body["detail"]
    assert "Traceback" not in str(resp.body)


def test_bad_trigger_bodies_are_refused_clearly(daemon) -> None:
    bad_json = daemon.post(
        "/api/tasks/ok/runs", raw=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status == 400 and bad_json.content_type == "application/problem+json"
    wrong_type = daemon.post(
        "/api/tasks/ok/runs",
        raw=b"a=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert wrong_type.status == 415
    undeclared = daemon.post("/api/tasks/ok/runs", {"params": {"x": "1"}})
    assert undeclared.status == 422 and undeclared.body["errors"][0]["name"] == "x"
    extra = daemon.post("/api/tasks/ok/runs", {"parms": {}})
    assert extra.status == 422


def test_health_reports_database_scheduler_and_data_dir(daemon) -> None:
    resp = daemon.get("/health")
    assert resp.status == 200
    assert resp.body == {"status": "ok", "database": "ok", "scheduler": "running", "data_dir": "ok"}


def test_idempotency_key_returns_the_same_run(daemon) -> None:
    headers = {"Idempotency-Key": "deploy-42"}
    first = daemon.post("/api/tasks/ok/runs", headers=headers)
    again = daemon.post("/api/tasks/ok/runs", headers=headers)
    other_task = daemon.post("/api/tasks/three/runs", headers=headers)
    assert (first.status, again.status, other_task.status) == (201, 200, 201)
    assert again.body["id"] == first.body["id"] != other_task.body["id"]
    assert first.body["idempotency_key"] == "deploy-42"


def test_oversized_bodies_are_413_problem_json(daemon) -> None:
    huge = b'{"params": {"x": "' + b"a" * (2 * 1024 * 1024) + b'"}}'
    resp = daemon.post("/api/tasks/ok/runs", raw=huge, headers={"Content-Type": "application/json"})
    assert resp.status == 413 and resp.content_type == "application/problem+json"


def test_daemon_logs_are_json_lines_with_task_and_run_id(daemon) -> None:
    import json

    run = daemon.wait_run(daemon.trigger("ok")["id"])
    events = [json.loads(line) for line in daemon.log().splitlines() if line.startswith("{")]
    assert events and all({"event", "level", "timestamp", "node"} <= set(e) for e in events)
    mine = [e for e in events if e.get("run_id") == run["id"]]
    assert {e["event"] for e in mine} >= {"run.started", "run.ended"}
    assert all(e["task"] == "ok" for e in mine)
