"""The daemon on PostgreSQL, and riding out a database outage without losing a record."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.postgres


def test_daemon_runs_on_postgresql(make_daemon, pg_admin) -> None:
    url = pg_admin.create()
    daemon = make_daemon('[tasks.hi]\ncommand = "echo hi"\n', daemon_extra=f'database = "{url}"')
    run = daemon.wait_run(daemon.trigger("hi")["id"])
    assert (run["end_reason"], run["exit_code"]) == ("success", 0)
    assert daemon.get("/api/runs?task_name=hi&total=true").body["total"] == 1


def test_an_outcome_is_recorded_after_a_database_outage(make_daemon, pg_admin) -> None:
    url = pg_admin.create()
    daemon = make_daemon(
        """
    [tasks.slow]
    command = "sleep 1.5; echo done"
    """,
        daemon_extra=f'database = "{url}"',
    )
    run = daemon.trigger("slow")
    daemon.wait_run(run["id"], lambda r: r["status"] == "running")
    pg_admin.cut_off(url)
    try:
        time.sleep(3)  # the run ends while its outcome cannot be written
        health = daemon.get("/health")
        assert health.status == 503 and health.body["database"] == "unreachable"
        during = daemon.post("/api/tasks/slow/runs")
        assert during.status == 503 and during.content_type == "application/problem+json"
        assert during.headers["Retry-After"] == "5"
    finally:
        pg_admin.restore(url)
    ended = daemon.wait_run(run["id"], timeout=30)
    assert (ended["end_reason"], ended["exit_code"]) == ("success", 0)
    assert ended["pid"] and ended["start_at"]
    assert "store.retrying" in daemon.log()
    assert daemon.get("/health").status == 200
