"""The database's answer on /health: a commit that landed a moment ago answers for the
database, so a health check in a burst of runs takes no hop to it (each waited for a
turn of the busy loop); once commits stop, a ping asks the database again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from cronwarden.run_record import RunRecord
from cronwarden.store import Store
from cronwarden.store.runs import FRESH_ANSWER


async def test_a_commit_that_just_landed_answers_a_ping(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Callable[..., Any]] = []
    read = store._read

    async def counted(work: Callable[..., Any]) -> Any:
        asked.append(work)
        return await read(work)

    monkeypatch.setattr(store, "_read", counted)
    await store.ping()
    assert len(asked) == 1  # nothing has landed: the database is asked

    run = RunRecord(
        id="00000000-0000-7000-8000-000000000001",
        task_name="t",
        triggered_by="schedule",
        created_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        node="n1",
        task_hash="abc",
    )
    assert await store.claim([run]) == {run.id}
    await store.ping()
    assert len(asked) == 1  # the commit answered

    loop = asyncio.get_running_loop()
    deadline = loop.time() + FRESH_ANSWER + 10
    while len(asked) == 1 and loop.time() < deadline:
        await asyncio.sleep(0.05)
        await store.ping()
    assert len(asked) == 2  # past FRESH_ANSWER, asked again
