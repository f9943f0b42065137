"""Pure triggers: fire times across zones and DST, tested without a clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cronwarden.errors import ScheduleError
from cronwarden.scheduler.triggers import (
    CronTrigger,
    EveryTrigger,
    RebootTrigger,
    _cached_next_fire,
    parse_schedule,
    schedule_kind,
)

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def fires(expr: str, tz: ZoneInfo, start: datetime, count: int) -> list[str]:
    trigger = parse_schedule(expr, tz)
    out, at = [], start
    for _ in range(count):
        nxt = trigger.next_fire(at)
        assert nxt is not None
        out.append(nxt.astimezone(tz).isoformat())
        at = nxt
    return out


def test_five_fields_in_utc() -> None:
    assert fires("*/15 * * * *", ZoneInfo("UTC"), datetime(2026, 1, 1, 0, 7, tzinfo=UTC), 3) == [
        "2026-01-01T00:15:00+00:00",
        "2026-01-01T00:30:00+00:00",
        "2026-01-01T00:45:00+00:00",
    ]


def test_six_fields_put_seconds_first() -> None:
    start = datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)
    assert fires("*/20 * * * * *", ZoneInfo("UTC"), start, 3) == [
        "2026-01-01T00:00:20+00:00",
        "2026-01-01T00:00:40+00:00",
        "2026-01-01T00:01:00+00:00",
    ]
    assert fires("5 30 9 * * *", ZoneInfo("UTC"), start, 1) == ["2026-01-01T09:30:05+00:00"]


def test_next_fire_is_strictly_after() -> None:
    trigger = parse_schedule("0 * * * *", ZoneInfo("UTC"))
    on_the_hour = datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert trigger.next_fire(on_the_hour) == on_the_hour + timedelta(hours=1)


@pytest.mark.parametrize(
    ("expr", "tz", "around"),
    [
        ("* * * * * *", ZoneInfo("UTC"), datetime(2026, 12, 6, 20, 0, 0, tzinfo=UTC)),
        ("*/15 * * * *", NY, datetime(2026, 11, 1, 5, 45, tzinfo=UTC)),  # the fall-back hour
        ("30 2 * * *", NY, datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),  # the skipped hour
        ("*/10 * * * * *", LORD_HOWE, datetime(2026, 4, 4, 15, 0, tzinfo=UTC)),  # half an hour back
    ],
)
def test_next_fire_within_a_second_is_that_of_its_whole_second(
    expr: str, tz: ZoneInfo, around: datetime
) -> None:
    """Fires are whole seconds, so next_fire may ask its cache on the whole second;
    the answer stays the exact first fire after the instant asked (worked out afresh)."""
    trigger = parse_schedule(expr, tz)
    assert isinstance(trigger, CronTrigger)
    at = around - timedelta(hours=2)
    for _ in range(12):
        fire = trigger.next_fire(at)
        assert fire is not None and fire.microsecond == 0
        for instant in (fire - timedelta(microseconds=1), fire - timedelta(microseconds=999_999)):
            assert trigger.next_fire(instant) == trigger._next_fire(instant) == fire
        just_after = fire + timedelta(microseconds=1)
        assert trigger.next_fire(just_after) == trigger._next_fire(just_after) != fire
        at = fire + timedelta(minutes=17, microseconds=123_457)


def test_tasks_woken_late_within_one_second_share_one_step() -> None:
    """200 per-second tasks woken late each ask from their own instant: one computation
    answers them all (it cost 0.7-0.9 ms a task a late wake, a third of a loaded loop)."""
    trigger = parse_schedule("* * * * * *", ZoneInfo("UTC"))
    woke = datetime(2026, 12, 6, 20, 0, 3, tzinfo=UTC)
    _cached_next_fire.cache_clear()
    answers = {trigger.next_fire(woke + timedelta(microseconds=37 * i + 1)) for i in range(200)}
    assert answers == {woke + timedelta(seconds=1)}
    assert _cached_next_fire.cache_info().misses == 1


def test_schedule_is_read_in_the_task_zone() -> None:
    assert fires("0 9 * * *", NY, datetime(2026, 1, 1, tzinfo=UTC), 1) == [
        "2026-01-01T09:00:00-05:00"
    ]


def test_nicknames() -> None:
    start = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    utc = ZoneInfo("UTC")
    assert fires("@hourly", utc, start, 1) == ["2026-01-01T01:00:00+00:00"]
    assert fires("@daily", utc, start, 1) == ["2026-01-02T00:00:00+00:00"]
    assert fires("@weekly", utc, start, 1) == ["2026-01-04T00:00:00+00:00"]  # a Sunday
    assert fires("@monthly", utc, start, 1) == ["2026-02-01T00:00:00+00:00"]
    assert fires("@yearly", utc, start, 1) == ["2027-01-01T00:00:00+00:00"]


def test_every_counts_from_the_epoch() -> None:
    trigger = parse_schedule("@every 90s", NY)
    assert isinstance(trigger, EveryTrigger)
    nxt = trigger.next_fire(datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC))
    assert nxt is not None and nxt.timestamp() % 90 == 0
    assert (trigger.next_fire(nxt) - nxt) == timedelta(seconds=90)  # type: ignore[operator]


def test_reboot_never_fires_on_a_clock() -> None:
    trigger = parse_schedule("@reboot", NY)
    assert isinstance(trigger, RebootTrigger)
    assert trigger.next_fire(datetime(2026, 1, 1, tzinfo=UTC)) is None


def test_day_fields_or_when_both_restricted_and_and_when_one_starts_with_star() -> None:
    utc, start = ZoneInfo("UTC"), datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday
    # 13th of the month OR a Friday
    assert fires("0 0 13 * 5", utc, start, 3) == [
        "2026-01-02T00:00:00+00:00",
        "2026-01-09T00:00:00+00:00",
        "2026-01-13T00:00:00+00:00",
    ]
    # */10 counts as unrestricted: only Fridays whose day is 1, 11, 21 or 31
    found = [datetime.fromisoformat(f) for f in fires("0 0 */10 * 5", utc, start, 6)]
    assert found[0] == datetime(2026, 5, 1, tzinfo=UTC)
    assert all(f.weekday() == 4 and f.day in (1, 11, 21, 31) for f in found)


# -- DST: the rule of DESIGN.md -------------------------------------------------------


def test_fixed_time_in_a_skipped_hour_fires_once_right_after_the_jump() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT in New York
    start = datetime(2026, 3, 7, 12, tzinfo=UTC)
    assert fires("30 2 * * *", NY, start, 2) == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
    ]
    # several matching wall times in the gap still fire once
    assert fires("*/15 2 * * *", NY, start, 2) == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:00:00-04:00",
    ]


def test_fixed_time_in_a_repeated_hour_fires_at_the_first_occurrence_only() -> None:
    # 2026-11-01 02:00 EDT -> 01:00 EST in New York
    start = datetime(2026, 10, 31, 12, tzinfo=UTC)
    assert fires("30 1 * * *", NY, start, 2) == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]


def test_periodic_schedule_follows_elapsed_time_through_the_repeated_hour() -> None:
    start = datetime(2026, 11, 1, 4, 15, tzinfo=UTC)  # 00:15 EDT
    assert fires("*/30 * * * *", NY, start, 6) == [
        "2026-11-01T00:30:00-04:00",
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]


def test_periodic_schedule_skips_wall_times_that_do_not_exist() -> None:
    start = datetime(2026, 3, 8, 6, 15, tzinfo=UTC)  # 01:15 EST
    assert fires("*/30 * * * *", NY, start, 3) == [
        "2026-03-08T01:30:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T03:30:00-04:00",
    ]


def test_half_hour_shift_of_lord_howe() -> None:
    # 2026-04-05 02:00 +11 -> 01:30 +10:30 (clocks go back 30 minutes)
    start = datetime(2026, 4, 4, 14, 0, tzinfo=UTC)  # 01:00 +11
    assert fires("45 1 * * *", LORD_HOWE, start, 1) == ["2026-04-05T01:45:00+11:00"]
    assert fires("*/30 * * * *", LORD_HOWE, start, 4) == [
        "2026-04-05T01:30:00+11:00",
        "2026-04-05T01:30:00+10:30",
        "2026-04-05T02:00:00+10:30",
        "2026-04-05T02:30:00+10:30",
    ]


def test_london_spring_forward() -> None:
    start = datetime(2026, 3, 28, 12, tzinfo=UTC)
    assert fires("30 1 * * *", LONDON, start, 2) == [
        "2026-03-29T02:00:00+01:00",
        "2026-03-30T01:30:00+01:00",
    ]


def test_kinds() -> None:
    assert schedule_kind(parse_schedule("0 2 * * *", NY)) == "fixed-time"
    assert schedule_kind(parse_schedule("0 */2 * * *", NY)) == "periodic"
    assert schedule_kind(parse_schedule("@every 5m", NY)) == "absolute"
    assert schedule_kind(parse_schedule("@reboot", NY)) == "at start"
    assert isinstance(parse_schedule("@HOURLY", NY), CronTrigger)


def test_naive_input_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_schedule("* * * * *", NY).next_fire(datetime(2026, 1, 1))


@pytest.mark.parametrize("expr", ["", "* * * *", "60 * * * *", "@sometimes", "@every x"])
def test_invalid_expressions(expr: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(expr, NY)


def test_tasks_with_the_same_schedule_share_one_trigger() -> None:
    """A trigger is a value of (expression, zone): ten thousand tasks on a few hundred
    schedules parse each once.  Only an H expression depends on the task's name."""
    london = ZoneInfo("Europe/London")
    shared = parse_schedule("30 2 * * *", london, "backup")
    assert parse_schedule("30 2 * * *", london, "report") is shared
    assert parse_schedule("30 2 * * *", UTC, "backup") is not shared  # another zone
    hashed = {name: parse_schedule("H H * * *", UTC, name) for name in ("a", "b", "c", "d")}
    assert parse_schedule("H H * * *", UTC, "a") == hashed["a"]  # the same name, the same times
    assert len({trigger.cron for trigger in hashed.values()}) > 1  # spread by name
    after = datetime(2026, 3, 1, tzinfo=UTC)
    assert shared.next_fire(after) == datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
