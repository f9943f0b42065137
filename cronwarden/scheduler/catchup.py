"""Pure: which fires of a trigger fell in a window the daemon did not watch.

Used both after downtime (window = last recorded fire .. now) and after a late wake-up
(suspend, blocked loop), so both follow the task's catch_up policy the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cronwarden.scheduler.triggers import AnyTrigger

# A fire later than this is treated as missed, not merely late.
LATE_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class Missed:
    """The newest fires of a window (at most ``keep``), and how many older ones exist."""

    fires: list[datetime]
    older: int
    older_is_exact: bool


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
            kept = fires[-keep:] if keep else []
            older = len(fires) - len(kept)
            return Missed(kept, older, older_is_exact=lower == start)
        span *= 2


def _fires_in(trigger: AnyTrigger, start: datetime, end: datetime) -> list[datetime]:
    fires = []
    at = trigger.next_fire(start)
    while at is not None and at <= end:
        fires.append(at)
        at = trigger.next_fire(at)
    return fires
