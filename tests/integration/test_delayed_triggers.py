"""Triggers for later (delay, run_at) and with a ttl, on a real daemon: never started
early, kept across a restart and a node's takeover, expired once, said in the API and
the CLI; bad values get a 422 that says what is allowed."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from conftest import wait_for  # type: ignore[import-not-found]

LEASE = 2.0


def z(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def trigger(daemon, task: str, **body):  # type: ignore[no-untyped-def]
    return daemon.post(f"/api/tasks/{task}/runs", body)


@pytest.mark.both_databases
def test_a_delayed_run_is_pending_until_its_time_then_runs(make_daemon) -> None:
    daemon = make_daemon(
        """
    [tasks.job]
    command = "echo ran"
    """
    )
    asked = trigger(daemon, "job", delay="2s")
    assert asked.status == 201, asked
    run = asked.body
    assert run["status"] == "pending" and run["expires_at"] is None
    delayed_until = z(run["delayed_until"])
    # counted from the request's arrival, a moment before its row was made
    assert abs(delayed_until - z(run["created_at"]) - timedelta(seconds=2)) < timedelta(seconds=1)
    assert daemon.get(f"/api/runs/{run['id']}").body["delayed_until"] == run["delayed_until"]
    ended = daemon.wait_run(run["id"])
    assert ended["end_reason"] == "success"
    assert z(ended["start_at"]) >= delayed_until, ended
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    past = trigger(daemon, "job", run_at=at).body
    assert past["delayed_until"] is None  # a past instant starts it now
    assert daemon.wait_run(past["id"])["end_reason"] == "success"


def test_bad_timing_gets_a_422_saying_what_is_allowed(make_daemon) -> None:
    daemon = make_daemon('[tasks.job]\ncommand = "true"\n')
    cases = {
        "give delay or run_at, not both": {"delay": "1m", "run_at": "2030-01-01T00:00:00Z"},
        "needs a zone": {"run_at": "2030-01-01T00:00:00"},
        'ttl must be at least "1s"': {"ttl": "0s"},
        "a duration such as": {"delay": "5 mins"},
        "must be within 366 days": {"run_at": "2099-01-01T00:00:00Z"},
    }
    for said, body in cases.items():
        answer = trigger(daemon, "job", **body)
        assert answer.status == 422, (body, answer)
        assert said in str(answer.body), (body, answer.body)
    assert daemon.runs() == []


@pytest.mark.both_databases
def test_a_run_not_started_within_its_ttl_expires_once(make_daemon, gate) -> None:
    daemon = make_daemon(
        f"""
    [tasks.one_at_a_time]
    command = "{gate.wait_command}"
    overlap = "queue"
    """
    )
    first = trigger(daemon, "one_at_a_time").body
    daemon.wait_run(first["id"], lambda r: r["status"] == "running")
    second = trigger(daemon, "one_at_a_time", ttl="1s").body
    ttl = z(second["expires_at"]) - z(second["created_at"])
    assert abs(ttl - timedelta(seconds=1)) < timedelta(milliseconds=500), second
    expired = daemon.wait_run(second["id"])
    assert expired["end_reason"] == "expired" and expired["start_at"] is None, expired
    assert expired["expired_at"] == expired["end_at"] and "ttl" in expired["error"]
    assert z(expired["end_at"]) >= z(second["expires_at"])
    gate.open()
    assert daemon.wait_run(first["id"])["end_reason"] == "success"
    runs = daemon.runs(task_name="one_at_a_time")
    assert sorted(r["end_reason"] for r in runs) == ["expired", "success"]
    assert daemon.get("/api/runs?end_reason=expired").body["runs"][0]["id"] == second["id"]


def test_a_delayed_run_survives_a_restart_and_starts_no_earlier(make_daemon) -> None:
    daemon = make_daemon('[tasks.job]\ncommand = "echo ran"\n')
    run = trigger(daemon, "job", delay="4s").body
    assert daemon.stop() == 0
    daemon.start()
    ended = daemon.wait_run(run["id"])
    assert ended["end_reason"] == "success"
    assert z(ended["start_at"]) >= z(run["delayed_until"])
    assert len(daemon.runs(task_name="job")) == 1


def test_a_delayed_run_can_be_stopped_and_then_never_starts(make_daemon) -> None:
    daemon = make_daemon('[tasks.job]\ncommand = "echo ran"\n')
    run = trigger(daemon, "job", delay="1h").body
    assert daemon.post(f"/api/runs/{run['id']}/stop").status == 202
    ended = daemon.wait_run(run["id"])
    assert ended["end_reason"] == "stopped" and ended["start_at"] is None


def test_the_cli_triggers_for_later_and_says_so(make_daemon) -> None:
    daemon = make_daemon('[tasks.job]\ncommand = "echo ran"\n')

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cronwarden", *args, "--url", daemon.url],
            capture_output=True,
            text=True,
            timeout=60,
        )

    later = cli("run", "job", "--delay", "1h", "--ttl", "2h")
    assert later.returncode == 0, later.stderr
    run_id, status = later.stdout.split()[:2]
    assert status == "pending" and "delayed until" in later.stdout, later.stdout
    shown = daemon.get(f"/api/runs/{run_id}").body
    assert shown["delayed_until"] is not None and shown["expires_at"] is not None
    bad = cli("run", "job", "--run-at", "tomorrow")
    assert bad.returncode != 0 and "run_at" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_a_delayed_run_of_a_killed_node_starts_on_a_survivor_at_its_time(
    make_daemon, pg_admin
) -> None:
    url = pg_admin.create()
    extra = f'database = "{url}"\nnode_lease = "{LEASE:g}s"\n'
    tasks = '[tasks.job]\ncommand = "echo ran"\n'
    first, second = (make_daemon(tasks, daemon_extra=extra) for _ in range(2))
    run = trigger(first, "job", delay="6s").body
    first.kill9()
    ended = second.wait_run(run["id"], timeout=30)
    assert ended["end_reason"] == "success", ended
    assert ended["node"] == second.get("/api/info").body["node"]
    assert z(ended["start_at"]) >= z(run["delayed_until"])
    wait_for(lambda: len(second.runs(task_name="job")) == 1, 5, "one run, no other")
