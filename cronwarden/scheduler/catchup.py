"""Pure: which fires to run when a task's time comes, after downtime or a late wake-up.

Downtime (window = newest recorded fire .. now) and a late wake-up (suspend, blocked
loop) are the same question, so both follow the task's catch_up policy the same way:
``plan_fires`` answers it from plain datetimes, with no clock and no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cronwarden.model import Trigger
from cronwarden.scheduler.policies import CatchUp, catch_up_fires
from cronwarden.scheduler.triggers import AnyTrigger

# A fire later than this is treated as missed, not merely late.
LATE_GRACE = timedelta(seconds=30)
# Past this many older missed fires, fire.missed reports "at least N".
_COUNT_LIMIT = 1000


@dataclass(frozen=True)
class Missed:
    """The newest fires of a window (at most ``keep``), and how many older ones exist."""

    fires: list[datetime]
    older: int
    older_is_exact: bool


@dataclass(frozen=True)
class FirePlan:
    """What to do now: fires to run (nominal time, how triggered) and what was missed.

    ``missed`` lists the newest dropped fires (at most max_catch_up), to be recorded as
    runs with end_reason missed; ``more`` counts the older dropped ones not listed.
    """

    run: list[tuple[datetime, Trigger]]
    missed: list[datetime] = field(default_factory=list)
    more: int = 0
    dropped_exact: bool = True
    anchor: datetime | None = None  # the newest fire handled, once this plan is carried out

    @property
    def dropped(self) -> int:
        return len(self.missed) + self.more


def plan_fires(
    trigger: AnyTrigger,
    *,
    anchor: datetime | None,
    due: datetime | None,
    now: datetime,
    offset: timedelta,
    catch_up: CatchUp,
    max_catch_up: int,
) -> FirePlan:
    """Decide the fires for a task at ``now``.

    ``due`` is the nominal fire the timer woke for (None at start-up), ``anchor`` the
    newest nominal fire already handled, ``offset`` the task's jitter.  A due fire that
    is on time (within LATE_GRACE of its jittered instant) and alone simply runs.  If
    it is later than that, or other fires piled up around it (the process was
    suspended or its loop blocked), every fire in (anchor, now] was missed and
    ``catch_up`` decides which of them run, as catch_up; the rest raise fire.missed.
    """
    if due is not None:
        if anchor is not None and due <= anchor:
            return FirePlan([], anchor=anchor)  # already handled
        start = anchor if anchor is not None else due - timedelta(microseconds=1)
        following = trigger.next_fire(due)
        alone = trigger.next_fire(start) == due and (following is None or following + offset > now)
        if alone and now - (due + offset) <= LATE_GRACE:
            return FirePlan([(due, Trigger.SCHEDULE)], anchor=due)
        anchor = start
    if anchor is None:
        return FirePlan([])  # a new task has nothing to catch up on
    # One fire more than max_catch_up, so that even with catch_up = "all" a gap larger
    # than the limit leaves a listed missed fire to carry the count of the older ones.
    window = missed_fires(trigger, anchor, now - offset, keep=max_catch_up + 1)
    if not window.fires:
        return FirePlan([], anchor=anchor)
    run, dropped = catch_up_fires(window.fires, mode=catch_up, max_catch_up=max_catch_up)
    listed = dropped[-max_catch_up:]
    return FirePlan(
        run=[(fire, Trigger.CATCH_UP) for fire in run],
        missed=listed,
        more=len(dropped) - len(listed) + window.older,
        dropped_exact=window.older_is_exact,
        anchor=window.fires[-1],
    )


def missed_fires(trigger: AnyTrigger, start: datetime, end: datetime, *, keep: int) -> Missed:
    """Fires in (start, end], newest ``keep`` of them, without walking the whole window.

    The window is searched backwards from ``end`` in doubling steps, so a per-second task
    that was down for a week costs a few thousand trigger steps, not 600,000.
    """
    span = timedelta(seconds=1)
    while True:
        lower = max(start, end - span)
        fires = _fires_in(trigger, lower, end)
        if len(fires) > keep or lower == start:
            break
        span *= 2
    kept = fires[-keep:] if keep else []
    if not kept:
        return Missed([], 0, older_is_exact=True)
    # Count the older fires exactly while that stays cheap; beyond, report a lower bound.
    older = _fires_in(trigger, start, kept[0] - timedelta(microseconds=1), limit=_COUNT_LIMIT)
    return Missed(kept, len(older), older_is_exact=len(older) < _COUNT_LIMIT)


def _fires_in(
    trigger: AnyTrigger, start: datetime, end: datetime, limit: int | None = None
) -> list[datetime]:
    fires: list[datetime] = []
    at = trigger.next_fire(start)
    while at is not None and at <= end and (limit is None or len(fires) < limit):
        fires.append(at)
        at = trigger.next_fire(at)
    return fires
