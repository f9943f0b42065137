"""Tasks about to fire for the first time have their definition's hash worked out
ahead (``Dispatcher.prepare``), so their fires' rows only look it up: at a minute's
boundary with 10,000 tasks, hashing at the fire was ~1.5 s of the loop before the
first run could start."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dispatch_doubles import T0, rig  # type: ignore[import-not-found]

import cronwarden.live_config
from cronwarden.model import Trigger

NAMES = [f"t{i:03d}" for i in range(250)]


async def test_a_prepared_task_s_fire_hashes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    r = rig("".join(f'[tasks.{name}]\ncommand = "true"\n' for name in NAMES))
    hashed: list[str] = []
    real = cronwarden.live_config.task_hash

    def counted(key, task):  # type: ignore[no-untyped-def]
        hashed.append(task.name)
        return real(key, task)

    monkeypatch.setattr(cronwarden.live_config, "task_hash", counted)
    await r.dispatcher.prepare(NAMES)
    assert sorted(hashed) == NAMES
    runs = await r.dispatcher.fire_many([(name, T0, Trigger.SCHEDULE) for name in NAMES])
    assert len(runs) == len(NAMES) and sorted(hashed) == NAMES  # nothing hashed again
    assert {run.task_hash for run in runs} == {r.live.task_hash(r.live.task(NAMES[0]))}
    await r.dispatcher.shutdown(timedelta(0))
