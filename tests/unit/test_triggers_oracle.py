"""Property tests: triggers against a brute-force oracle around real DST transitions.

The oracle walks UTC minutes and applies DESIGN.md's rule literally, using only
zoneinfo and the field sets croniter expands:
* periodic (hour field starts with "*"): an instant fires iff its local wall time matches;
* fixed-time: an instant fires iff its wall time matches and this is that wall time's
  first occurrence, or it is the first instant after a forward jump whose skipped wall
  times include a match.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronwarden.scheduler.triggers import parse_schedule

ZONES = [
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
    "America/St_Johns",
    "Asia/Gaza",
]
MINUTE = ["*", "*/15", "0", "30", "5,35", "0-10/5", "45", "*/7", "59"]
HOUR = ["*", "*/2", "1", "2", "0-3", "1,2", "3", "*/3", "0", "23", "1-2", "22-23"]
# (day-of-month, day-of-week): OR when both are restricted, AND when either starts with
# "*"; pairs are chosen so fires stay days apart at most, which keeps the oracle quick.
DAYS = [
    ("*", "*"),
    ("*", "*"),
    ("*", "1-5"),
    ("*", "0"),
    ("*", "*/2"),
    ("*/2", "*"),
    ("1-15", "*"),
    ("13", "5"),
    ("1-15", "1-5"),
    ("*/2", "1-5"),
    ("*/3", "*"),
]
M = timedelta(minutes=1)


@cache
def transitions(zone: str) -> list[datetime]:
    """UTC instants (to the minute) at which the zone's offset changed, 2019-2031."""
    tz = ZoneInfo(zone)
    found = []
    at = datetime(2019, 1, 1, tzinfo=UTC)
    end = datetime(2031, 1, 1, tzinfo=UTC)
    step = timedelta(hours=6)
    while at < end:
        if at.astimezone(tz).utcoffset() != (at + step).astimezone(tz).utcoffset():
            lo, hi = at, at + step
            while hi - lo > M:
                mid = lo + (hi - lo) / 2
                mid = mid.replace(second=0, microsecond=0)
                if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                    lo = mid if mid > lo else lo + M
                else:
                    hi = mid
            found.append(hi)
        at += step
    return found


class Oracle:
    def __init__(self, expr: str, tz: ZoneInfo) -> None:
        fields = expr.split()
        expanded, _ = croniter.expand(expr)
        self.minutes, self.hours, self.doms, self.months, self.dows = (
            set(f) if f != ["*"] else None for f in expanded
        )
        if self.dows is not None:
            self.dows = {d % 7 for d in self.dows}
        self.day_or = not (fields[2].startswith("*") or fields[4].startswith("*"))
        self.periodic = fields[1].startswith("*")
        self.tz = tz

    def matches(self, wall: datetime) -> bool:
        def ok(allowed: set[int] | None, value: int) -> bool:
            return allowed is None or value in allowed

        if not (
            ok(self.minutes, wall.minute)
            and ok(self.hours, wall.hour)
            and ok(self.months, wall.month)
        ):
            return False
        dom = ok(self.doms, wall.day)
        dow = ok(self.dows, (wall.weekday() + 1) % 7)
        if self.day_or:
            return dom or dow
        return dom and dow

    def fires_at(self, u: datetime) -> bool:
        wall = u.astimezone(self.tz).replace(tzinfo=None)
        if self.periodic:
            return self.matches(wall)
        first = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        if self.matches(wall) and first == u:
            return True
        before = (u - M).astimezone(self.tz).replace(tzinfo=None)
        skipped = before + M
        while skipped < wall:  # wall times the clock jumped over to reach u
            if self.matches(skipped):
                return True
            skipped += M
        return False

    def next_fire(self, after: datetime) -> datetime:
        u = after.replace(second=0, microsecond=0) + M
        for _ in range(60 * 24 * 40):
            if self.fires_at(u):
                return u
            u += M
        raise AssertionError("no fire within 40 days")


expressions = st.builds(
    lambda m, h, days: f"{m} {h} {days[0]} * {days[1]}",
    st.sampled_from(MINUTE),
    st.sampled_from(HOUR),
    st.sampled_from(DAYS),
)


@st.composite
def near_transition(draw: st.DrawFn) -> tuple[str, datetime]:
    zone = draw(st.sampled_from(ZONES))
    instant = draw(st.sampled_from(transitions(zone)))
    offset = draw(st.integers(min_value=-36 * 60, max_value=12 * 60))
    seconds = draw(st.integers(min_value=0, max_value=59))
    return zone, instant + timedelta(minutes=offset, seconds=seconds)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions, near_transition())
def test_trigger_agrees_with_the_oracle(expr: str, where: tuple[str, datetime]) -> None:
    zone, after = where
    tz = ZoneInfo(zone)
    trigger, oracle = parse_schedule(expr, tz), Oracle(expr, tz)
    at = after
    for _ in range(4):
        expected = oracle.next_fire(at)
        got = trigger.next_fire(at)
        local = expected.astimezone(tz).isoformat()
        assert got == expected, (
            f"{expr!r} in {zone} after {at.astimezone(tz).isoformat()}: trigger gave "
            f"{got and got.astimezone(tz).isoformat()}, oracle {local}"
        )
        at = expected


def test_every_zone_has_transitions_to_test() -> None:
    for zone in ZONES:
        assert len(transitions(zone)) >= 10, zone
