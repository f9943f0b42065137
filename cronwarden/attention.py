"""What about a task calls for an operator's eye, most urgent first: the states the
dashboard's landing view counts and lists, and ``GET /api/tasks?state=`` filters on.

* ``failing``: its newest run (the "last run" every task listing shows) ended with a
  failure (outcomes.py says which end reasons are failures);
* ``stuck``: its newest run has been running longer than the task allows: the
  smallest of ``stuck_after`` and ``max_duration`` that is set, or, with neither,
  ``timeout`` plus ``kill_grace`` (by then the kill should have ended it);
* ``overdue``: ``expect_success_within`` has passed since its last success (the
  dead-man's switch of alerts/overdue.py, which owns that rule);
* ``running``: its newest run is running;
* ``paused``: its schedule is paused.

Only the newest run is looked at: a task listing reads one run per task, and a
listing of 10,000 tasks must not read more.  Pure: the caller reads the runs, the
pauses and the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal, get_args

from cronwarden.model import Status
from cronwarden.outcomes import FAILURE_END_REASONS
from cronwarden.run_record import AnyRun

State = Literal["failing", "stuck", "overdue", "running", "paused"]
# Most urgent first: the order of the landing view, and of ``sort=attention``.
ORDER: tuple[State, ...] = get_args(State)
_RANK = {state: i for i, state in enumerate(ORDER)}
_NONE = timedelta(0)


def stuck_limit(
    stuck_after: timedelta, max_duration: timedelta, timeout: timedelta, kill_grace: timedelta
) -> timedelta | None:
    """How long a run of the task may run before it counts as stuck (None: never)."""
    set_ones = [limit for limit in (stuck_after, max_duration) if limit > _NONE]
    if set_ones:
        return min(set_ones)
    return timeout + kill_grace if timeout > _NONE else None


def states_of(
    last: AnyRun | None,
    *,
    paused: bool,
    overdue: bool,
    stuck_after: timedelta | None,
    now: datetime,
) -> list[State]:
    """The task's states, most urgent first (empty: nothing to look at)."""
    found: set[State] = set()
    if last is not None and last.status == Status.ENDED:
        if last.end_reason in FAILURE_END_REASONS:
            found.add("failing")
    elif last is not None and last.status == Status.RUNNING:
        found.add("running")
        started = last.start_at or now
        if stuck_after is not None and now - started > stuck_after:
            found.add("stuck")
    if overdue:
        found.add("overdue")
    if paused:
        found.add("paused")
    return [state for state in ORDER if state in found]


def rank(states: Iterable[State]) -> int:
    """Where a task with these states stands in the attention order: its most urgent
    state's place, after every state for a task with none."""
    return min((_RANK[state] for state in states), default=len(ORDER))
