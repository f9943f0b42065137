"""What calls for an operator's eye (cronwarden/attention.py), as a rule and through
GET /api/tasks served in-process, where the fake clock says when a run has run too long
and a silence has lasted too long: no sleeping, no daemon."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from inprocess import InProcessApi, serve_in_process  # type: ignore[import-not-found]

from cronwarden.attention import ORDER, rank, states_of, stuck_limit
from cronwarden.model import EndReason, Status
from cronwarden.run_record import RunRecord

NOW = datetime(2031, 1, 6, 9, 0, tzinfo=UTC)
ZERO = timedelta(0)
MINUTE = timedelta(minutes=1)


def run(status: str, end_reason: str | None = None, started: datetime | None = NOW) -> RunRecord:
    return RunRecord(
        id="r1",
        task_name="t",
        triggered_by="api",
        created_at=NOW - MINUTE,
        node="n1",
        task_hash="h",
        status=status,
        end_reason=end_reason,
        start_at=started,
    )


def plain(last: RunRecord | None) -> list[str]:
    """The states of a task neither paused nor overdue, with no stuck limit."""
    return list(states_of(last, paused=False, overdue=False, stuck_after=None, now=NOW))


def test_a_failure_is_failing_and_a_stop_or_a_skip_is_not() -> None:
    for reason in ("failed", "timeout", "crashed", "log_overflow"):
        assert plain(run(Status.ENDED, reason)) == ["failing"]
    for reason in ("success", "stopped", "skipped", "missed", "expired"):
        assert plain(run(Status.ENDED, reason)) == []
    assert plain(None) == []


def test_a_run_is_stuck_once_past_its_limit_and_states_come_most_urgent_first() -> None:
    running = run(Status.RUNNING, started=NOW - 10 * MINUTE)
    kept = {"paused": True, "overdue": True, "now": NOW}
    assert states_of(running, stuck_after=11 * MINUTE, **kept) == ["overdue", "running", "paused"]
    stuck = states_of(running, stuck_after=9 * MINUTE, **kept)
    assert stuck == ["stuck", "overdue", "running", "paused"]
    assert states_of(run(Status.PENDING), stuck_after=ZERO, **kept) == ["overdue", "paused"]
    assert ORDER == ("failing", "stuck", "overdue", "running", "paused")
    assert rank(["paused", "failing"]) == 0 < rank(["stuck"]) < rank(["paused"]) < rank([])


def test_the_stuck_limit_is_the_smallest_rule_set_else_the_kill_deadline() -> None:
    assert stuck_limit(ZERO, ZERO, ZERO, 5 * MINUTE) is None  # no rule, no timeout: never
    assert stuck_limit(ZERO, ZERO, 30 * MINUTE, 5 * MINUTE) == 35 * MINUTE
    assert stuck_limit(20 * MINUTE, ZERO, 30 * MINUTE, 5 * MINUTE) == 20 * MINUTE
    assert stuck_limit(20 * MINUTE, 10 * MINUTE, ZERO, 5 * MINUTE) == 10 * MINUTE


TASKS = """
[tasks.backup]
command = "true"
stuck_after = "10m"

[tasks.heartbeat]
command = "true"
expect_success_within = "1h"

[tasks.report]
command = "true"
"""


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[InProcessApi]:
    async with serve_in_process(TASKS, tmp_path) as served:
        await served.services.alerts.start([])  # the dead-man's switch starts watching
        yield served


async def listed(api: InProcessApi, query: str) -> dict[str, list[str]]:
    status, _, body = await api.call("GET", f"/api/tasks?{query}")
    assert status == 200, body
    return {task["name"]: task["attention"] for task in body["tasks"]}


async def test_stuck_and_overdue_follow_the_clock(api: InProcessApi) -> None:
    status, _, started = await api.call("POST", "/api/tasks/backup/runs", json={})
    assert status == 201, started
    for _ in range(100):  # the fake launcher starts it on the dispatcher's own task
        if (await listed(api, "state=running")).get("backup") == ["running"]:
            break
        await asyncio.sleep(0)
    assert await listed(api, "state=running") == {"backup": ["running"]}
    assert await listed(api, "state=stuck,overdue") == {}

    api.clock.advance(timedelta(minutes=11))  # past stuck_after
    assert await listed(api, "state=stuck") == {"backup": ["stuck", "running"]}

    api.clock.advance(timedelta(minutes=50))  # an hour without heartbeat's success
    assert await listed(api, "state=stuck,overdue&sort=attention") == {
        "backup": ["stuck", "running"],
        "heartbeat": ["overdue"],
    }
    _, _, counts = await api.call("GET", "/api/tasks?counts=true&limit=1")
    assert counts["counts"] == {
        "tasks": 3,
        "failing": 0,
        "stuck": 1,
        "overdue": 1,
        "running": 1,
        "paused": 0,
    }

    api.launcher.finish(started["id"], EndReason.FAILED)
    for _ in range(100):
        if "backup" in await listed(api, "state=failing"):
            break
        await asyncio.sleep(0)
    assert await listed(api, "state=failing,stuck") == {"backup": ["failing"]}
    _, _, one = await api.call("GET", "/api/tasks/backup")
    assert one["attention"] == ["failing"]  # a single task says the same
