"""Catch-up after downtime and after a late wake-up: pure, with plain datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronwarden.model import Trigger
from cronwarden.scheduler.catchup import LATE_GRACE, plan_fires
from cronwarden.scheduler.triggers import parse_schedule

MINUTELY = parse_schedule("* * * * *", UTC)
T = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def plan(mode: str, *, anchor, due, now, offset=timedelta(0), cap=100):  # type: ignore[no-untyped-def]
    return plan_fires(
        MINUTELY, anchor=anchor, due=due, now=now, offset=offset, catch_up=mode, max_catch_up=cap
    )  # type: ignore[arg-type]


def test_on_time_fire_simply_runs() -> None:
    p = plan("skip", anchor=T - M, due=T, now=T + timedelta(milliseconds=3))
    assert p.run == [(T, Trigger.SCHEDULE)] and p.anchor == T and p.dropped == 0


def test_a_fire_already_handled_is_not_run_twice() -> None:
    assert plan("all", anchor=T, due=T, now=T).run == []


def test_new_task_catches_up_nothing() -> None:
    assert plan("all", anchor=None, due=None, now=T).run == []


def test_downtime_skip() -> None:
    p = plan("skip", anchor=T, due=None, now=T + 10 * M + timedelta(seconds=5))
    assert p.run == [] and p.dropped == 10 and p.dropped_exact and p.anchor == T + 10 * M


def test_downtime_latest() -> None:
    p = plan("latest", anchor=T, due=None, now=T + 10 * M + timedelta(seconds=5))
    assert p.run == [(T + 10 * M, Trigger.CATCH_UP)] and p.dropped == 9


def test_downtime_all_is_capped_to_the_newest() -> None:
    p = plan("all", anchor=T, due=None, now=T + 10 * M, cap=3)
    assert p.run == [(T + k * M, Trigger.CATCH_UP) for k in (8, 9, 10)]
    assert p.dropped == 7 and p.anchor == T + 10 * M


def test_downtime_all_within_the_cap_runs_each() -> None:
    p = plan("all", anchor=T, due=None, now=T + 3 * M + timedelta(seconds=1))
    assert [f for f, _ in p.run] == [T + M, T + 2 * M, T + 3 * M] and p.dropped == 0


def test_long_downtime_does_not_walk_every_fire() -> None:
    per_second = parse_schedule("* * * * * *", UTC)
    p = plan_fires(
        per_second,
        anchor=T,
        due=None,
        now=T + timedelta(days=30),
        offset=timedelta(0),
        catch_up="latest",
        max_catch_up=100,
    )
    assert p.run == [(T + timedelta(days=30), Trigger.CATCH_UP)]
    assert p.dropped > 0 and not p.dropped_exact


def test_late_wake_follows_the_same_policy() -> None:
    # the timer wanted T+1m, the machine slept until T+10m+5s
    now = T + 10 * M + timedelta(seconds=5)
    assert plan("skip", anchor=T, due=T + M, now=now).run == []
    assert plan("skip", anchor=T, due=T + M, now=now).dropped == 10
    latest = plan("latest", anchor=T, due=T + M, now=now)
    assert latest.run == [(T + 10 * M, Trigger.CATCH_UP)] and latest.anchor == T + 10 * M
    assert len(plan("all", anchor=T, due=T + M, now=now).run) == 10


def test_slightly_late_is_still_on_time() -> None:
    p = plan("skip", anchor=T, due=T + M, now=T + M + LATE_GRACE)
    assert p.run == [(T + M, Trigger.SCHEDULE)]


def test_jitter_delays_the_start_but_not_the_nominal_time() -> None:
    offset = timedelta(seconds=20)
    p = plan("skip", anchor=T, due=T + M, now=T + M + offset, offset=offset)
    assert p.run == [(T + M, Trigger.SCHEDULE)]  # scheduled_for stays the nominal minute
    # downtime: a fire whose jittered instant has not come yet is not missed
    p = plan("all", anchor=T, due=None, now=T + 2 * M + timedelta(seconds=10), offset=offset)
    assert [f for f, _ in p.run] == [T + M]


def test_a_short_stall_that_piled_up_fires_is_a_late_wake() -> None:
    per_second = parse_schedule("* * * * * *", UTC)
    s = timedelta(seconds=1)
    # the loop was stopped for ~3s: the timer wakes for T+1s while T+2s and T+3s are due too
    plan_ = plan_fires(
        per_second,
        anchor=T,
        due=T + s,
        now=T + 3 * s + timedelta(milliseconds=200),
        offset=timedelta(0),
        catch_up="latest",
        max_catch_up=100,
    )
    assert plan_.run == [(T + 3 * s, Trigger.CATCH_UP)] and plan_.dropped == 2


def test_fires_skipped_before_the_due_one_are_noticed() -> None:
    # the previous wake-up was late, so the timer skipped T+1m..T+3m and now wakes for T+4m
    p = plan("all", anchor=T, due=T + 4 * M, now=T + 4 * M + timedelta(milliseconds=5))
    assert [f for f, _ in p.run] == [T + M, T + 2 * M, T + 3 * M, T + 4 * M]
    assert all(how is Trigger.CATCH_UP for _, how in p.run)
