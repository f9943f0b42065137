"""GET /api/info's failure set and GET /api/tasks/{task}/stats against the real app
served in-process (tests/inprocess.py): the handler asks cronwarden/stats.py and shapes
the answer; no daemon, no subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from inprocess import InProcessApi, serve_in_process  # type: ignore[import-not-found]

from cronwarden.model import EndReason, Status, Trigger
from cronwarden.outcomes import FAILURE_END_REASONS
from cronwarden.run_record import RunRecord
from cronwarden.support.timefmt import iso_z_or_none

TASKS = '[tasks.hello]\ncommand = "echo hello"\n'


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[InProcessApi]:
    async with serve_in_process(TASKS, tmp_path) as served:
        yield served


def ended(api: InProcessApi, i: int, reason: EndReason, duration_ms: int) -> RunRecord:
    at = api.clock.now() - timedelta(minutes=100 - i)
    return RunRecord(
        id=f"01900000-0000-7000-8000-{i:012d}",
        task_name="hello",
        status=Status.ENDED,
        end_reason=reason,
        triggered_by=Trigger.API,
        created_at=at,
        start_at=at,
        end_at=at + timedelta(milliseconds=duration_ms),
        duration_ms=duration_ms,
        node="n1",
        task_hash="h",
    )


async def test_info_lists_the_failing_end_reasons(api: InProcessApi) -> None:
    status, _, body = await api.call("GET", "/api/info")
    assert status == 200, body
    assert body["failure_end_reasons"] == list(FAILURE_END_REASONS)


async def test_stats_are_the_summary_of_the_tasks_runs(api: InProcessApi) -> None:
    runs = [
        ended(api, 1, EndReason.SUCCESS, 100),
        ended(api, 2, EndReason.LOG_OVERFLOW, 400),
        ended(api, 3, EndReason.SUCCESS, 300),
        ended(api, 4, EndReason.STOPPED, 200),
        ended(api, 5, EndReason.SKIPPED, 9_000),
    ]
    await api.store.claim(runs)
    status, _, body = await api.call("GET", "/api/tasks/hello/stats")
    assert status == 200, body
    assert body["runs"] == 5 and body["active"] == 0
    assert body["by_end_reason"] == {"success": 2, "log_overflow": 1, "stopped": 1, "skipped": 1}
    assert body["success_rate"] == 0.5  # 2 of the 4 that ran
    assert body["duration_ms"] == {"p50": 200, "p95": 400, "max": 400, "sample": 4}
    assert body["last_success_at"] == iso_z_or_none(runs[2].end_at)
    assert body["last_failure_at"] == iso_z_or_none(runs[1].end_at)
