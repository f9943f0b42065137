"""Pause and resume through the real app served in-process (tests/inprocess.py): the
handler only asks cronwarden/pauses.py, which stores, times and says the change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from inprocess import InProcessApi, serve_in_process  # type: ignore[import-not-found]

TASKS = '[tasks.nightly]\ncommand = "true"\nschedule = "0 3 * * *"\n'
JSON_POST = {"Content-Type": "application/json"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[InProcessApi]:
    async with serve_in_process(TASKS, tmp_path) as served:
        yield served


def said(api: InProcessApi) -> list[tuple[str, object]]:
    events, _ = api.services.events.after(api.services.events.first_id - 1, 100)
    return [(e.kind, e.data) for e in events if e.kind.startswith("task.")]


async def test_a_pause_is_stored_untimed_and_said_once(api: InProcessApi) -> None:
    status, _, task = await api.call("POST", "/api/tasks/nightly/pause", headers=JSON_POST)
    assert status == 200, task
    assert task["paused"] is True and task["next_run_at"] is None
    assert (await api.store.task_states())["nightly"].paused
    await api.call("POST", "/api/tasks/nightly/pause", headers=JSON_POST)  # no change
    assert said(api) == [("task.paused", {"task": "nightly"})]

    status, _, task = await api.call("POST", "/api/tasks/nightly/resume", headers=JSON_POST)
    assert status == 200, task
    assert task["paused"] is False and task["next_run_at"] is not None
    assert said(api) == [
        ("task.paused", {"task": "nightly"}),
        ("task.resumed", {"task": "nightly"}),
    ]


async def test_pausing_an_unknown_task_is_a_404_and_stores_nothing(api: InProcessApi) -> None:
    status, _, body = await api.call("POST", "/api/tasks/nope/pause", headers=JSON_POST)
    assert status == 404, body
    assert await api.store.task_states() == {}
    assert said(api) == []
