"""A timed fire's row is committed ahead of its instant, so that at the instant only
admission and the spawn are left; a reserved fire that does not happen leaves no row.

The scheduler service and the real dispatcher run on the fake clock, with the
in-memory store (see dispatch_doubles)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dispatch_doubles import (  # type: ignore[import-not-found]
    T0,
    FakeLauncher,
    Rig,
    config,
    rig,
    settle,
)

from cronwarden.model import EndReason, Run, Status, Trigger
from cronwarden.reservations import RESERVE_AHEAD, RESERVE_AHEAD_MAX, reserve_ahead
from cronwarden.run_tokens import token_digest
from cronwarden.runners.dispatch import Dispatcher
from cronwarden.scheduler.catchup import LATE_GRACE
from cronwarden.scheduler.service import SchedulerService

MINUTELY = '[tasks.a]\ncommand = "true"\nschedule = "* * * * *"\ntimezone = "UTC"\n'
HOURLY = MINUTELY.replace("* * * * *", "0 * * * *")
FIRST = T0 + timedelta(minutes=1)  # the rig's clock starts on a whole hour
HOUR = T0 + timedelta(hours=1)


@dataclass
class TaskStates:
    states: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def task_states(self) -> Mapping[str, Any]:
        return {}

    async def last_scheduled_for(self) -> dict[str, datetime]:
        return {}

    async def save_task_state(self, task_name: str, **values: Any) -> None:
        self.states.setdefault(task_name, {}).update(values)


async def scheduled(r: Rig, dispatcher: Dispatcher | None = None) -> SchedulerService:
    service = SchedulerService(dispatcher or r.dispatcher, TaskStates(), r.clock)
    await service.start(r.live.tasks)
    return service


async def until(r: Rig, when: datetime) -> None:
    r.clock.advance(when - r.clock.at)
    await settle()


def rows(r: Rig, scheduled_for: datetime) -> list[Run]:
    return [run for run in r.store.runs.values() if run.scheduled_for == scheduled_for]


async def test_the_row_is_committed_ahead_and_the_instant_needs_no_write() -> None:
    r = rig(MINUTELY)
    service = await scheduled(r)
    await until(r, FIRST - RESERVE_AHEAD - timedelta(milliseconds=1))
    assert r.store.runs == {}
    await until(r, FIRST - RESERVE_AHEAD)
    [row] = rows(r, FIRST)
    assert (row.status, row.not_before, row.created_at) == (Status.PENDING, FIRST, FIRST)
    r.store.unavailable = True  # no write can land now: the spawn must not need one
    await until(r, FIRST)
    assert r.launcher.started == [row.id]
    r.store.unavailable = False
    service.shutdown()
    await service.wait_inflight()


async def test_a_reserved_fire_starts_with_the_token_its_reservation_committed() -> None:
    """The report token made with the reservation's row is the one the job gets: no
    new token is made and written at the instant (each run of a 10,000-task minute
    did, and waited for that commit before its spawn)."""
    r = rig(MINUTELY)
    service = await scheduled(r)
    await until(r, FIRST - RESERVE_AHEAD)
    [row] = rows(r, FIRST)
    committed = row.report_token_sha256
    await until(r, FIRST)
    assert r.launcher.started == [row.id]
    token = r.launcher.tokens[row.id]
    assert token is not None
    assert token_digest(token) == committed == rows(r, FIRST)[0].report_token_sha256
    service.shutdown()
    await service.wait_inflight()


async def test_a_task_paused_after_its_reservation_leaves_no_row_and_does_not_run() -> None:
    r = rig(MINUTELY)
    service = await scheduled(r)
    await until(r, FIRST - RESERVE_AHEAD)
    assert len(rows(r, FIRST)) == 1
    service.follow_pause("a", paused=True)
    await settle()
    assert rows(r, FIRST) == []
    await until(r, FIRST + timedelta(seconds=1))
    assert r.launcher.started == []
    service.shutdown()


async def test_a_shutdown_before_the_instant_deletes_the_reservation() -> None:
    r = rig(MINUTELY)
    service = await scheduled(r)
    await until(r, FIRST - RESERVE_AHEAD)
    service.shutdown()
    await service.wait_inflight()
    assert r.store.runs == {}


async def test_a_fire_refused_at_its_instant_ends_skipped_there() -> None:
    r = rig(MINUTELY + 'overlap = "skip"\n')
    service = await scheduled(r)
    await until(r, FIRST)
    [first] = r.launcher.started  # still running at the next fire
    second = FIRST + timedelta(minutes=1)
    await until(r, second - RESERVE_AHEAD)
    assert rows(r, second)[0].status == Status.PENDING  # admission waits for the instant
    await until(r, second)
    [skipped] = rows(r, second)
    assert (skipped.status, skipped.end_reason) == (Status.ENDED, EndReason.SKIPPED)
    assert (skipped.end_at, skipped.duration_ms) == (second, 0)
    assert r.launcher.started == [first]
    service.shutdown()


async def test_a_reload_between_reservation_and_instant_runs_the_new_definition() -> None:
    r = rig(MINUTELY)
    service = await scheduled(r)
    await until(r, FIRST - RESERVE_AHEAD)
    r.live.swap(config(MINUTELY.replace('"true"', '"echo changed"')))
    service.apply(r.live.tasks)  # the timing is the same: the reservation stays
    await until(r, FIRST)
    [row] = rows(r, FIRST)
    assert r.launcher.started == [row.id]
    assert row.task_hash == r.live.task_hash(r.live.task("a"))


async def test_two_nodes_reserve_one_fire_and_only_one_runs_it() -> None:
    r = rig(MINUTELY)
    other_launcher = FakeLauncher()
    other = Dispatcher(r.store, r.live, node="n2", launcher=other_launcher, clock=r.clock)
    services = [await scheduled(r), await scheduled(r, other)]
    await until(r, FIRST)
    [row] = rows(r, FIRST)
    assert r.launcher.started + other_launcher.started == [row.id]
    for service in services:
        service.shutdown()


async def test_a_wake_too_late_turns_the_reserved_row_into_the_catch_up_run() -> None:
    r = rig(HOURLY)
    service = await scheduled(r)
    await until(r, HOUR - RESERVE_AHEAD)
    [reserved] = rows(r, HOUR)
    r.clock.at = HOUR + LATE_GRACE + timedelta(seconds=1)  # the loop was blocked
    await until(r, r.clock.at)
    [caught_up] = rows(r, HOUR)  # the same row, not a second one for the same fire
    assert (caught_up.id, caught_up.triggered_by) == (reserved.id, Trigger.CATCH_UP)
    assert r.launcher.started == [reserved.id]
    service.shutdown()


async def test_a_reserved_fire_slept_through_is_recorded_as_missed_once() -> None:
    r = rig(MINUTELY + 'catch_up = "latest"\n')
    service = await scheduled(r)
    await until(r, FIRST - RESERVE_AHEAD)
    r.clock.at = FIRST + timedelta(minutes=5, seconds=1)  # the loop was blocked
    await until(r, r.clock.at)
    [missed] = rows(r, FIRST)
    assert (missed.status, missed.end_reason) == (Status.ENDED, EndReason.MISSED)
    [latest] = rows(r, FIRST + timedelta(minutes=5))
    assert r.launcher.started == [latest.id]
    service.shutdown()


async def test_a_pause_and_resume_inside_the_lead_still_fires_once() -> None:
    r = rig(MINUTELY)
    service = await scheduled(r)
    await until(r, FIRST - RESERVE_AHEAD)
    service.follow_pause("a", paused=True)  # its reservation's delete is on its way...
    service.follow_pause("a", paused=False)  # ...as the same fire is timed and reserved again
    await until(r, FIRST - RESERVE_AHEAD + timedelta(milliseconds=1))
    await until(r, FIRST)
    [row] = rows(r, FIRST)
    assert r.launcher.started == [row.id]
    service.shutdown()


def test_fires_sharing_an_instant_are_reserved_further_ahead_up_to_a_bound() -> None:
    assert reserve_ahead(1) == RESERVE_AHEAD  # a lone fire: 250 ms
    assert reserve_ahead(10_000) > timedelta(seconds=3)  # ~3 s to make and commit, busy
    assert reserve_ahead(1_000_000) == RESERVE_AHEAD_MAX
