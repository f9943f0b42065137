"""Pure schedule triggers: ``next_fire(after) -> datetime | None``, no clock, no I/O.

The DST rule (DESIGN.md, Run semantics) is implemented here and nowhere else:

* Cron fields are matched against the task's local wall clock.
* A *fixed-time* schedule (hour field not starting with ``*``) fires once per matching
  wall time: a repeated wall time fires at its first occurrence only, and matching wall
  times inside a skipped interval fire once, at the first instant after the jump.
* A *periodic* schedule (hour field starting with ``*``) follows elapsed time: it fires in
  both occurrences of a repeated hour and not at all for wall times that do not exist.
* ``@every`` counts absolute time from the Unix epoch, so every node and every restart
  agrees on the same fire instants.

Candidate wall times come from croniter iterating over *naive* local datetimes; each
candidate is then mapped to zero, one or two real instants with zoneinfo.  Fire history
is the store's business: a trigger only answers "what is the first fire after t".
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, TypeVar

from croniter import CroniterBadDateError, CroniterError, croniter

from cronwarden.errors import ScheduleError
from cronwarden.support.units import parse_duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
SCHEDULE_HELP = (
    '5-field cron ("*/5 * * * *"), 6 fields with seconds first ("*/10 * * * * *"), '
    'H for a value spread by task name ("H H * * *"), '
    "@hourly, @daily, @weekly, @monthly, @yearly, @reboot or @every DURATION"
)
# Offsets are sampled this far either side of an instant to notice a nearby transition.
_TRANSITION_PROBE = timedelta(days=1)


@dataclass(frozen=True)
class CronTrigger:
    """A 5- or 6-field cron schedule read on the wall clock of ``tz``."""

    expression: str
    tz: tzinfo
    cron: str = field(repr=False)
    with_seconds: bool = field(repr=False)
    periodic: bool = field(repr=False)
    day_or: bool = field(repr=False)
    # Parsing the expression costs ~4x a step, so one iterator is kept and re-aimed.
    _iterator: croniter[datetime] = field(init=False, repr=False, compare=False)

    _fields: CronFields | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        iterator = _shared_iterator(self.cron, self.day_or, self.with_seconds)
        object.__setattr__(self, "_iterator", iterator)
        object.__setattr__(self, "_fields", CronFields.of(self.cron, iterator, self.day_or))

    def _walls_after(self, start: datetime) -> Iterator[datetime]:
        """Matching wall times after ``start`` (naive), in order."""
        fields = self._fields
        if fields is not None:
            found = fields.next_wall(start)
            while found is not None:
                yield found
                found = fields.next_wall(found)
            return
        candidates = self._iterator
        candidates.set_current(start, force=True)
        while True:
            try:
                yield candidates.get_next(datetime)
            except CroniterBadDateError:
                return

    def next_fire(self, after: datetime) -> datetime | None:
        if after.tzinfo is None:
            raise ValueError("next_fire needs an aware datetime")
        # Every fire is a whole second (cron has no finer field; zone offsets are whole
        # seconds), so the first after ``after`` is the first after its whole second.
        # Asked on that second, the tasks of one schedule woken late (each at its own
        # ``now``) share the cached answer.  Without it, 200 per-second tasks 3 s late
        # cost 0.7-0.9 ms each on a loaded machine, and a third of the main thread's
        # samples in benchmarks/soak.py's profile.
        return _cached_next_fire(self, after.replace(microsecond=0) if after.microsecond else after)

    def _next_fire(self, after: datetime) -> datetime | None:
        low, _ = self._offset_bounds(after)
        # Earliest wall time that could map to an instant after `after`.
        start = after.astimezone(UTC).replace(tzinfo=None) + low
        best: datetime | None = None
        stop_at: datetime | None = None
        for wall in self._walls_after(start):
            if stop_at is not None and wall > stop_at:
                return best
            for instant in self._instants(wall):
                if instant > after and (best is None or instant < best):
                    best = instant
                    lo, hi = self._offset_bounds(instant)
                    if lo == hi:  # no transition near: later wall times map later
                        return best
                    stop_at = wall + (hi - lo)
        return best

    def _offset_bounds(self, instant: datetime) -> tuple[timedelta, timedelta]:
        offsets = [
            _utcoffset(self.tz, instant + delta)
            for delta in (-_TRANSITION_PROBE, timedelta(0), _TRANSITION_PROBE)
        ]
        return min(offsets), max(offsets)

    def _instants(self, wall: datetime) -> list[datetime]:
        first = wall.replace(tzinfo=self.tz, fold=0)
        second = wall.replace(tzinfo=self.tz, fold=1)
        if first.utcoffset() == second.utcoffset():
            return [first.astimezone(UTC)]
        first_utc = first.astimezone(UTC)
        if first_utc.astimezone(self.tz).replace(tzinfo=None) == wall:
            # The wall time occurs twice (clocks went back).
            if self.periodic:
                return [first_utc, second.astimezone(UTC)]
            return [first_utc]
        # The wall time does not exist (clocks jumped forward).
        if self.periodic:
            return []
        return [self._end_of_gap(wall)]

    def _end_of_gap(self, wall: datetime) -> datetime:
        """The first instant after the jump that skipped ``wall`` (bisected to the second)."""
        after_offset = wall.replace(tzinfo=self.tz, fold=1).utcoffset()
        assert after_offset is not None
        lo = int((wall - after_offset).replace(tzinfo=UTC).timestamp())  # still before the jump
        hi = int(wall.replace(tzinfo=self.tz, fold=0).timestamp())  # already after it
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _utcoffset(self.tz, datetime.fromtimestamp(mid, UTC)) == after_offset:
                hi = mid
            else:
                lo = mid
        return datetime.fromtimestamp(hi, UTC)


_SEARCH_YEARS = 30  # past the longest gap between matches (29 Feb, 8 years around 2100)


@dataclass(frozen=True)
class CronFields:
    """A cron expression as the value sets croniter expands it to, stepped over
    directly: the next matching wall time in a few comparisons per field, where
    croniter's general search costs about 0.2 ms (10,000 tasks at start-up: 2 s).

    Only for expressions without L, W or # (those carry meaning the sets do not); the
    trigger falls back to croniter for them.  Tests compare the two on random
    expressions, and the DST oracle tests run through this path.
    """

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int] | None  # None: any
    months: tuple[int, ...]
    weekdays: frozenset[int] | None  # cron numbering, 0 = Sunday; None: any
    day_or: bool  # both restricted and Vixie's OR applies

    @classmethod
    def of(cls, cron: str, parsed: croniter[datetime], day_or: bool) -> CronFields | None:
        fields = cron.split()
        dom_text, dow_text = fields[-3].lower(), fields[-1].lower()
        if "l" in dom_text or "w" in dom_text or "#" in dow_text or "l" in dow_text:
            return None
        # croniter's order: minute, hour, day, month, weekday[, second]
        expanded = parsed.expanded
        seconds = expanded[5] if len(expanded) > 5 else [0]

        def values(field: list[Any], span: range) -> tuple[int, ...] | None:
            if field == ["*"]:
                return _shared(tuple(span))
            if not all(isinstance(v, int) for v in field):
                return None
            return _shared(tuple(sorted(set(field))))

        parts = [
            values(seconds, range(60)),
            values(expanded[0], range(60)),
            values(expanded[1], range(24)),
            values(expanded[2], range(1, 32)),
            values(expanded[3], range(1, 13)),
            values(expanded[4], range(7)),
        ]
        if any(p is None for p in parts):
            return None
        second, minute, hour, day, month, weekday = (p or () for p in parts)
        any_day, any_weekday = expanded[2] == ["*"], expanded[4] == ["*"]
        return cls(
            seconds=second,
            minutes=minute,
            hours=hour,
            days=None if any_day else _shared(frozenset(day)),
            months=month,
            weekdays=None if any_weekday else _shared(frozenset(d % 7 for d in weekday)),
            day_or=day_or and not any_day and not any_weekday,
        )

    def _day_matches(self, day: datetime) -> bool:
        in_days = self.days is None or day.day in self.days
        in_weekdays = self.weekdays is None or (day.weekday() + 1) % 7 in self.weekdays
        return (in_days or in_weekdays) if self.day_or else (in_days and in_weekdays)

    def next_wall(self, after: datetime) -> datetime | None:
        """The first matching wall time strictly after ``after`` (naive), to the second."""
        t = after.replace(microsecond=0) + timedelta(seconds=1)
        last_year = t.year + _SEARCH_YEARS
        while t.year <= last_year:
            if t.month not in self.months:
                i = bisect.bisect_right(self.months, t.month)
                t = (
                    datetime(t.year, self.months[i], 1)
                    if i < len(self.months)
                    else datetime(t.year + 1, self.months[0], 1)
                )
                continue
            if not self._day_matches(t):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            i = bisect.bisect_left(self.hours, t.hour)
            if i == len(self.hours):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            if self.hours[i] != t.hour:
                t = t.replace(hour=self.hours[i], minute=0, second=0)
            i = bisect.bisect_left(self.minutes, t.minute)
            if i == len(self.minutes):
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if self.minutes[i] != t.minute:
                t = t.replace(minute=self.minutes[i], second=0)
            i = bisect.bisect_left(self.seconds, t.second)
            if i == len(self.seconds):
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            return t.replace(second=self.seconds[i])
        return None


_SHARED: dict[Any, Any] = {}
_V = TypeVar("_V", tuple[int, ...], frozenset[int])


def _shared(values: _V) -> _V:
    """One copy of each value set: ten thousand tasks use a few hundred distinct ones."""
    shared: _V = _SHARED.setdefault(values, values)
    return shared


@functools.lru_cache(maxsize=16384)
def _cached_next_fire(trigger: CronTrigger, after: datetime) -> datetime | None:
    """Triggers are values (expression + zone), so every task sharing a schedule asks
    the same question at a fire: a thousand tasks on "*/15 * * * * *" cost one cron
    step per question instead of a thousand."""
    return trigger._next_fire(after)


@dataclass(frozen=True)
class EveryTrigger:
    """``@every DURATION``: fires at whole multiples of the interval since the epoch."""

    expression: str
    interval: timedelta

    def next_fire(self, after: datetime) -> datetime | None:
        step = _microseconds(self.interval)
        elapsed = _microseconds(after - EPOCH)
        return EPOCH + timedelta(microseconds=(elapsed // step + 1) * step)


@dataclass(frozen=True)
class RebootTrigger:
    """``@reboot``: fires once when the daemon starts, on each node; never on a clock."""

    expression: str = "@reboot"

    def next_fire(self, after: datetime) -> datetime | None:
        return None


AnyTrigger = CronTrigger | EveryTrigger | RebootTrigger


def parse_schedule(expression: str, tz: tzinfo, hash_id: str = "") -> AnyTrigger:
    """Build the trigger for a schedule expression; raises ScheduleError saying what is
    allowed.  ``hash_id`` (the task name) places the ``H`` of a hashed expression.

    Triggers are values, so tasks with the same expression and zone share one: 10,000
    tasks had a few hundred distinct schedules, each parsed twice (the config's check,
    then the task's trigger), and the parse was a fifth of the time to READY."""
    if not _HASHED.search(expression):
        hash_id = ""  # only an H expression depends on the task
    return _parse_schedule(expression, tz, hash_id)


@functools.lru_cache(maxsize=16384)
def _parse_schedule(expression: str, tz: tzinfo, hash_id: str) -> AnyTrigger:
    text = " ".join(expression.split())
    lowered = text.lower()
    if lowered == "@reboot":
        return RebootTrigger()
    if lowered.startswith("@every"):
        return _parse_every(text)
    if text.startswith("@"):
        if lowered not in _NICKNAMES:
            raise ScheduleError(f"unknown schedule {expression!r}; expected {SCHEDULE_HELP}")
        return _cron_trigger(expression, _NICKNAMES[lowered], tz, hash_id)
    return _cron_trigger(expression, text, tz, hash_id)


def schedule_kind(trigger: AnyTrigger) -> str:
    """How DST affects the trigger, in the words ``explain`` uses."""
    if isinstance(trigger, CronTrigger):
        return "periodic" if trigger.periodic else "fixed-time"
    return "absolute" if isinstance(trigger, EveryTrigger) else "at start"


def _parse_every(text: str) -> EveryTrigger:
    _, _, rest = text.partition(" ")
    try:
        interval = parse_duration(rest)
    except ValueError as exc:
        allowed = exc.args[0].removeprefix("expected ")
        raise ScheduleError(f"{text!r}: @every needs {allowed}") from None
    if interval < timedelta(seconds=1):
        raise ScheduleError(f"{text!r}: @every needs an interval of at least 1s")
    return EveryTrigger(expression=text, interval=interval)


def _cron_trigger(expression: str, cron: str, tz: tzinfo, hash_id: str) -> CronTrigger:
    fields = cron.split()
    if len(fields) not in (5, 6):
        raise ScheduleError(f"{expression!r} has {len(fields)} fields; expected {SCHEDULE_HELP}")
    with_seconds = len(fields) == 6
    if any(_HASHED.search(f) for f in fields):
        fields = _unhashed(expression, fields, with_seconds, hash_id)
        cron = " ".join(fields)
    minute_at = 1 if with_seconds else 0
    hour_field, dom_field, dow_field = fields[minute_at + 1], fields[minute_at + 2], fields[-1]
    # Vixie cron: day-of-month OR day-of-week only when neither starts with "*".
    day_or = not (dom_field.startswith("*") or dow_field.startswith("*"))
    try:
        _shared_iterator(cron, day_or, with_seconds)
    except (CroniterError, ValueError) as exc:
        raise ScheduleError(
            f"invalid cron expression {expression!r}: {exc}; fields are [second 0-59] "
            "minute 0-59, hour 0-23, day-of-month 1-31, month 1-12, day-of-week 0-7"
        ) from None
    trigger = CronTrigger(
        expression=expression,
        tz=tz,
        cron=cron,
        with_seconds=with_seconds,
        periodic=hour_field.startswith("*"),
        day_or=day_or,
    )
    # Only a restricted day-of-month in restricted months can name no real date (31 Feb).
    month_field = fields[minute_at + 3]
    could_be_impossible = not dom_field.startswith("*") and not month_field.startswith("*")
    if could_be_impossible and trigger.next_fire(datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise ScheduleError(f"cron expression {expression!r} never matches a real date")
    return trigger


_HASHED = re.compile(r"(?<![a-z])h(?![a-z])", re.IGNORECASE)  # H, H/15, H(0-29); not "thu"
# croniter's field order: seconds come last
_CRONITER_ORDER = {5: (0, 1, 2, 3, 4), 6: (5, 0, 1, 2, 3, 4)}


def _unhashed(expression: str, fields: list[str], with_seconds: bool, hash_id: str) -> list[str]:
    """Jenkins-style ``H`` fields replaced by the values croniter's hashing picks for
    ``hash_id``: the same task name gives the same times on every node and restart,
    and different tasks spread out.  The result is an ordinary expression, so the DST
    rule and the Vixie day rule apply to it as written (``H`` is a fixed value)."""
    try:
        expanded = croniter(
            " ".join(fields),
            datetime(2000, 1, 1),
            hash_id=hash_id.encode() or b"-",
            second_at_beginning=with_seconds,
        ).expanded
    except (CroniterError, ValueError) as exc:
        raise ScheduleError(
            f"invalid cron expression {expression!r}: {exc}; H takes the forms H, H/STEP "
            "and H(FROM-TO), e.g. 'H H * * *' or 'H/15 * * * *'"
        ) from None
    order = _CRONITER_ORDER[len(fields)]
    return [
        ",".join(str(v) for v in expanded[order[i]]) if _HASHED.search(field) else field
        for i, field in enumerate(fields)
    ]


@functools.lru_cache(maxsize=4096)
def _shared_iterator(cron: str, day_or: bool, with_seconds: bool) -> croniter[datetime]:
    """One parsed iterator per distinct expression; raises croniter's errors if invalid.

    CronTrigger.next_fire re-aims it at each call and never awaits, so triggers sharing
    an expression can share its iterator.
    """
    return croniter(
        cron,
        datetime(2000, 1, 1),
        day_or=day_or,
        second_at_beginning=with_seconds,
        ret_type=datetime,
    )


def _utcoffset(tz: tzinfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None
    return offset


def _microseconds(delta: timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
