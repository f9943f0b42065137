"""Runs triggered for later (delay, run_at) and with a ttl, through the real Dispatcher
on the in-memory store and the fake clock: never started early, expired once where
they wait (delayed, queued, placing), never once they started."""

from __future__ import annotations

from datetime import timedelta

from dispatch_doubles import T0, rig, settle  # type: ignore[import-not-found]

from cronwarden.model import EndReason, Status
from cronwarden.run_timing import Timing
from cronwarden.runners.lifecycle import RunState

TASKS = """
[daemon]
max_concurrent_runs = 2

[tasks.job]
command = "true"

[tasks.queued]
command = "true"
overlap = "queue"
"""


async def test_a_delayed_run_waits_for_its_instant_and_not_a_second_less() -> None:
    r = rig(TASKS)
    at = T0 + timedelta(seconds=90)
    run, created = await r.dispatcher.trigger("job", timing=Timing(start_at=at))
    await settle()
    assert created and run.delayed_until == at and run.expires_at is None
    view = r.dispatcher.run_view(run.id)
    assert view is not None and view.state is RunState.DELAYED
    assert r.store.runs[run.id].status == Status.PENDING
    r.clock.advance(timedelta(seconds=89))
    await settle()
    assert r.launcher.running() == []
    r.clock.advance(timedelta(seconds=1))
    await settle()
    assert r.launcher.running() == [run.id]


async def test_a_run_at_in_the_past_starts_now() -> None:
    r = rig(TASKS)
    run, _ = await r.dispatcher.trigger("job", timing=Timing(start_at=T0 - timedelta(hours=1)))
    await settle()
    assert run.delayed_until is None and r.launcher.running() == [run.id]


async def test_a_queued_run_past_its_ttl_expires_once_and_never_starts() -> None:
    r = rig(TASKS)
    first, _ = await r.dispatcher.trigger("queued")
    second, _ = await r.dispatcher.trigger("queued", timing=Timing(ttl=timedelta(minutes=1)))
    await settle()
    assert second.expires_at == T0 + timedelta(minutes=1)
    view = r.dispatcher.run_view(second.id)
    assert view is not None and view.state is RunState.QUEUED
    r.clock.advance(timedelta(minutes=1))
    await settle()
    ended = r.store.runs[second.id]
    assert ended.end_reason == EndReason.EXPIRED and ended.end_at == T0 + timedelta(minutes=1)
    assert ended.start_at is None and "ttl" in (ended.error or "")
    r.launcher.finish(first.id)
    r.clock.advance(timedelta(minutes=5))
    await settle()
    assert r.launcher.running() == []
    assert r.store.end_records.count(second.id) == 1


async def test_a_run_delayed_past_its_ttl_expires_at_its_ttl() -> None:
    r = rig(TASKS)
    timing = Timing(start_at=T0 + timedelta(minutes=10), ttl=timedelta(minutes=1))
    run, _ = await r.dispatcher.trigger("job", timing=timing)
    await settle()
    r.clock.advance(timedelta(minutes=1))
    await settle()
    assert r.store.runs[run.id].end_reason == EndReason.EXPIRED
    r.clock.advance(timedelta(minutes=10))
    await settle()
    assert r.launcher.running() == [] and r.store.end_records == [run.id]


async def test_a_run_waiting_for_a_host_place_expires_where_it_waits() -> None:
    r = rig(TASKS)
    await r.dispatcher.trigger("job")
    await r.dispatcher.trigger("queued")
    third, _ = await r.dispatcher.trigger("job", timing=Timing(ttl=timedelta(seconds=30)))
    await settle()
    view = r.dispatcher.run_view(third.id)
    assert view is not None and view.state is RunState.PLACING
    r.clock.advance(timedelta(seconds=30))
    await settle()
    ended = r.store.runs[third.id]
    assert ended.end_reason == EndReason.EXPIRED and ended.start_at is None


async def test_a_started_run_outlives_its_ttl() -> None:
    r = rig(TASKS)
    run, _ = await r.dispatcher.trigger("job", timing=Timing(ttl=timedelta(seconds=30)))
    await settle()
    assert r.launcher.running() == [run.id]
    r.clock.advance(timedelta(minutes=5))
    await settle()
    assert r.launcher.running() == [run.id]
    r.launcher.finish(run.id)
    await settle()
    assert r.store.runs[run.id].end_reason == EndReason.SUCCESS


async def test_a_delayed_run_can_be_stopped_before_its_time() -> None:
    r = rig(TASKS)
    run, _ = await r.dispatcher.trigger("job", timing=Timing(start_at=T0 + timedelta(hours=1)))
    await settle()
    await r.dispatcher.stop(run.id)
    await settle()
    ended = r.store.runs[run.id]
    assert ended.end_reason == EndReason.STOPPED and ended.start_at is None
    r.clock.advance(timedelta(hours=2))
    await settle()
    assert r.launcher.running() == []
