"""The dispatch core against a real daemon: each test reproduces a failure seen before
the lifecycle and admission were rebuilt (issue: dispatch core)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from conftest import concurrently, stays_false, wait_for  # type: ignore[import-not-found]

pytestmark = pytest.mark.both_databases


def z(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def events(daemon, name: str, run_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    """The daemon's JSON log events called ``name`` about one run."""
    found = []
    for line in daemon.log().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == name and event.get("run_id") == run_id:
            found.append(event)
    return found


def overlapping(runs: list[dict]) -> list[tuple[str, str]]:
    """Pairs of runs whose processes were alive at the same time."""
    spans = sorted(
        (z(r["start_at"]), z(r["end_at"]) if r["end_at"] else datetime.max.replace(tzinfo=None), r)
        for r in runs
        if r["start_at"]
    )
    pairs = []
    for i, (_, end, run) in enumerate(spans):
        for start2, _, other in spans[i + 1 :]:
            end_aware = end if end.tzinfo else end.replace(tzinfo=start2.tzinfo)
            if start2 < end_aware:
                pairs.append((run["id"], other["id"]))
    return pairs


def test_fifty_concurrent_triggers_with_one_idempotency_key_make_one_run(make_daemon, gate) -> None:
    daemon = make_daemon(
        f"""
    [tasks.sl]
    command = "{gate.wait_command}"
    params = ["who"]
    """,
    )
    key = {"Idempotency-Key": "deploy-42"}
    answers = concurrently(
        50, lambda _: daemon.post("/api/tasks/sl/runs", {"params": {"who": "x"}}, headers=key)
    )
    statuses = sorted(a.status for a in answers)
    assert statuses == [200] * 49 + [201], statuses
    assert len({a.body["id"] for a in answers}) == 1
    assert len(daemon.runs(task_name="sl")) == 1
    # The same key with another body is a client error, not a silent second meaning.
    other = daemon.post("/api/tasks/sl/runs", {"params": {"who": "y"}}, headers=key)
    assert other.status == 422 and other.content_type == "application/problem+json"
    assert "Idempotency-Key" in other.body["detail"]
    # The key belongs to its task: another task may use it.
    gate.open()
    assert daemon.wait_run(answers[0].body["id"])["end_reason"] == "success"
    assert len(daemon.runs(task_name="sl")) == 1


def test_a_delayed_retry_goes_through_admission(make_daemon, gate) -> None:
    """overlap = skip: a retry that comes due while another run holds the slot is skipped,
    never started beside it."""
    daemon = make_daemon(f"""
    [tasks.job]
    command = "if [ -n \\"$CRONWARDEN_PARAM_hold\\" ]; then {gate.wait_command}; else exit 1; fi"
    params = ["hold"]
    overlap = "skip"
    retries = 1
    retry_delay = "2s"
    """)
    first = daemon.wait_run(daemon.trigger("job")["id"])
    assert first["end_reason"] == "failed"
    holder = daemon.trigger("job", {"hold": "1"})
    holder = daemon.wait_run(holder["id"], lambda r: r["status"] == "running")
    retry = wait_for(
        lambda: [r for r in daemon.runs(task_name="job") if r["retry_of"] == first["id"]],
        what="the retry row",
    )[0]
    assert z(holder["start_at"]) < z(retry["created_at"]) + timedelta(seconds=2)  # precondition
    skipped = daemon.wait_run(retry["id"], timeout=15)
    assert skipped["end_reason"] == "skipped" and skipped["start_at"] is None
    assert "overlap = skip" in skipped["error"]
    gate.open()
    daemon.wait_run(holder["id"])
    assert overlapping(daemon.runs(task_name="job")) == []


def test_stopping_queued_runs_never_starts_another_beside_the_running_one(
    make_daemon, gate
) -> None:
    daemon = make_daemon(f"""
    [tasks.q]
    command = "{gate.wait_command}"
    overlap = "queue"
    """)
    running = daemon.trigger("q")
    daemon.wait_run(running["id"], lambda r: r["status"] == "running")
    second, third = daemon.trigger("q"), daemon.trigger("q")
    assert daemon.post(f"/api/runs/{second['id']}/stop").status == 202
    assert daemon.wait_run(second["id"])["end_reason"] == "stopped"
    stops = concurrently(6, lambda _: daemon.post(f"/api/runs/{third['id']}/stop").status)
    assert sorted(stops) == [202] + [409] * 5, stops
    ended = daemon.wait_run(third["id"])
    assert ended["end_reason"] == "stopped" and ended["start_at"] is None

    def two_active() -> bool:
        return sum(r["status"] == "running" for r in daemon.runs(task_name="q")) > 1

    assert stays_false(two_active, window=1.0)
    assert len(events(daemon, "run.ended", third["id"])) == 1
    gate.open()
    assert daemon.wait_run(running["id"])["end_reason"] == "success"
    assert overlapping(daemon.runs(task_name="q")) == []


def test_removing_a_task_by_reload_ends_its_waiting_retries(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.flaky]
    command = "exit 1"
    retries = 3
    retry_delay = "3s"

    [tasks.stays]
    command = "true"
    """)
    first = daemon.wait_run(daemon.trigger("flaky")["id"])
    pending = wait_for(
        lambda: [r for r in daemon.runs(task_name="flaky") if r["status"] == "pending"],
        what="a waiting retry",
    )[0]
    text = daemon.config.read_text()
    daemon.config.write_text(
        text[: text.index("[tasks.")] + '[tasks.stays]\ncommand = "true"\n'
        '[tasks.fresh]\ncommand = "true"\n'
    )
    answer = daemon.post("/api/reload")
    assert answer.status == 200, answer.body
    assert answer.body["removed"] == ["flaky"] and answer.body["added"] == ["fresh"]
    ended = daemon.wait_run(pending["id"])
    assert ended["end_reason"] == "stopped" and ended["start_at"] is None
    assert "removed" in ended["error"]
    assert first["attempt"] == 1

    def later_attempt() -> bool:
        return any(r["attempt"] > 2 for r in daemon.runs(task_name="flaky"))

    assert stays_false(later_attempt, window=1.0)
