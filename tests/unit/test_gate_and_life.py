"""The admission gate and a run's life, through the real Dispatcher on the in-memory
store, the fake clock and the fake launcher: where a run is, is its lifecycle state."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from dispatch_doubles import RecordingStore, rig, settle  # type: ignore[import-not-found]

from cronwarden.model import EndReason, Status
from cronwarden.runners.lifecycle import RunState

HOST_OF_ONE = """
[daemon]
max_concurrent_runs = 1

[tasks.a]
command = "true"

[tasks.b]
command = "true"
"""


async def test_a_run_waiting_for_a_host_place_is_placing_and_starts_when_one_frees() -> None:
    r = rig(HOST_OF_ONE)
    first, _ = await r.dispatcher.trigger("a")
    second, _ = await r.dispatcher.trigger("b")
    await settle()
    view = r.dispatcher.run_view(second.id)
    assert view is not None and view.state is RunState.PLACING
    assert r.launcher.running() == [first.id]
    assert sorted(r.dispatcher.phases()) == [("a", "running"), ("b", "waiting")]
    assert r.store.runs[second.id].status == Status.PENDING
    r.launcher.finish(first.id)
    await settle()
    assert view.state is RunState.RUNNING and r.launcher.running() == [second.id]


async def test_a_run_stopped_while_placing_ends_stopped_without_starting() -> None:
    r = rig(HOST_OF_ONE)
    await r.dispatcher.trigger("a")
    second, _ = await r.dispatcher.trigger("b")
    await settle()
    await r.dispatcher.stop(second.id)
    await settle()
    ended = r.store.runs[second.id]
    assert ended.end_reason == EndReason.STOPPED and ended.start_at is None
    assert "max_concurrent_runs" in (ended.error or "")
    assert r.store.end_records == [second.id]


ONE = '[tasks.job]\ncommand = "true"\nretries = 3\nretry_on = ["failed", "crashed"]\n'


async def test_an_abandoned_run_is_stopped_and_records_nothing() -> None:
    r = rig(ONE)
    run, _ = await r.dispatcher.trigger("job")
    await settle()
    assert r.launcher.running() == [run.id]
    writes = r.store.writes
    r.dispatcher.abandon([run.id])
    await settle()
    assert r.launcher.running() == []  # its process was stopped
    assert r.store.end_records == [] and r.store.writes == writes  # the survivor's row
    assert r.store.runs[run.id].status == Status.RUNNING
    assert not [x for x in r.store.runs.values() if x.retry_of == run.id]  # no retry here
    assert ("run.ended", run.id) not in r.changes
    assert r.dispatcher.active_runs == 0 and r.dispatcher.run_view(run.id) is None


QUEUED = '[tasks.q]\ncommand = "true"\noverlap = "queue"\n'


async def test_an_abandoned_queued_run_leaves_its_line_and_records_nothing() -> None:
    r = rig(QUEUED)
    first, _ = await r.dispatcher.trigger("q")
    second, _ = await r.dispatcher.trigger("q")
    third, _ = await r.dispatcher.trigger("q")
    await settle()
    r.dispatcher.abandon([second.id])
    assert r.dispatcher.counts("q") == (1, 1)
    r.launcher.finish(first.id)
    await settle()
    assert r.launcher.running() == [third.id]
    assert r.store.end_records == [first.id]
    assert r.store.runs[second.id].status == Status.PENDING  # as the survivor left it


class HeldEnds(RecordingStore):
    """Ends are committed only once the test lets them through."""

    def __init__(self) -> None:
        super().__init__()
        self.let_through = asyncio.Event()

    async def record(self, run_id: str, values: Mapping[str, Any]) -> None:
        if values.get("status") == Status.ENDED:
            await self.let_through.wait()
        await super().record(run_id, values)


async def test_a_queued_run_starts_once_its_predecessors_outcome_is_committed() -> None:
    store = HeldEnds()
    r = rig(QUEUED, store=store)
    first, _ = await r.dispatcher.trigger("q")
    second, _ = await r.dispatcher.trigger("q")
    await settle()
    view = r.dispatcher.run_view(second.id)
    assert view is not None and view.state is RunState.QUEUED
    r.launcher.finish(first.id)
    await settle()
    assert r.launcher.running() == [] and view.state is RunState.QUEUED  # first: ENDING
    store.let_through.set()
    await settle()
    assert store.end_records == [first.id] and r.launcher.running() == [second.id]
