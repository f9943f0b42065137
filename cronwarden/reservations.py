"""Reservations: a scheduled fire's run row, committed before its instant.

A fire's row must be durable before its process starts, and a commit takes a few
milliseconds, more on a busy host: written at the instant, it would make every
scheduled run that much late.  So the row of each timed fire is committed
RESERVE_AHEAD before its instant (``reserve``: pending, triggered by the schedule,
``not_before`` and ``created_at`` = the instant), and at the instant only admission
and the spawn are left.  That is what keeps start lateness p99 low (BENCHMARKS.md).

The scheduler keeps the reservations it has in flight (scheduler/reserving.py); the
run core writes them and, at the instant, brings the row up to date: a reloaded task's
hash, or the catch-up trigger of a wake too late (runners/fires.py).  The rules every
other part follows are here, each in its Python form (a run in memory, the store
double) beside its SQL form (the stores), so that the two are read and changed as one:

* An unused reservation (its task paused, changed or removed, the daemon stopping) is
  deleted, and only while still pending: a row that went on is kept (``may_discard``).
* A node's new row for the same fire takes over its own unused reservation, so no
  delete has to land first (a pause and resume, a reload, a wake too late recorded as
  missed); another node's reservation, or a run that started, counts as claimed
  (``may_take_over``).
* At start-up, a reservation whose instant has not come is deleted (the scheduler
  reserves that fire again); one whose instant came is a claimed fire the old life may
  have started, so it ends crashed (``instant_came``, runners/recovery.py).  A
  reserved row never runs early.
* A run exists from its ``created_at``: until its instant a reservation is not a run
  anyone should see, so listings, tallies and a task's last run read only rows created
  by now, and a total is the filter's count less the reservations ahead (``is_listed``).
* Runs about to start on another node (overlap across nodes, the takeover of a dead
  node) count a reservation once its instant has come (``instant_came_rows``).

Why 250 ms: long enough for a commit on a busy host, short enough that the row is
rarely seen early (a pause or a reload inside the lead lets it go again).  Fires that
share an instant are reserved together, and the lead grows with their number
(``reserve_ahead``): 10,000 of them took ~3 s on a busy two-core host to make and
commit, so with 250 ms the first of them started ~4 s after its instant.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cronwarden.model import Run, Status, Trigger
from cronwarden.run_record import AnyRun, RunRecord

RESERVE_AHEAD = timedelta(milliseconds=250)
RESERVE_PER_FIRE = timedelta(microseconds=400)  # each other fire sharing the instant
RESERVE_AHEAD_MAX = timedelta(seconds=5)

_RUNS: sa.Table = Run.__table__  # type: ignore[attr-defined]


# -- what a reservation is -------------------------------------------------------------


def reserve_ahead(fires: int) -> timedelta:
    """How long before an instant that ``fires`` fires share they are reserved."""
    return min(RESERVE_AHEAD + max(fires - 1, 0) * RESERVE_PER_FIRE, RESERVE_AHEAD_MAX)


def reserve(run: RunRecord, instant: datetime) -> RunRecord:
    """Make ``run``, a new row of a scheduled fire, its fire's reservation for
    ``instant``: it comes into being at the instant, for whoever reads it, and does
    not start before it."""
    run.change(
        {
            "status": Status.PENDING,
            "triggered_by": Trigger.SCHEDULE,
            "created_at": instant,
            "not_before": instant,
        }
    )
    return run


def is_reserved_fire(run: AnyRun) -> bool:
    """A scheduled fire's row committed ahead of its instant, not started yet."""
    return (
        run.status == Status.PENDING
        and run.triggered_by == Trigger.SCHEDULE
        and run.not_before is not None
    )


def reserved_rows() -> sa.ColumnElement[bool]:
    """The rows ``is_reserved_fire`` tells."""
    return sa.and_(
        _RUNS.c.status == Status.PENDING,
        _RUNS.c.triggered_by == Trigger.SCHEDULE,
        _RUNS.c.not_before.is_not(None),
    )


def instant_came(run: AnyRun, now: datetime) -> bool:
    """A reservation whose instant has come by ``now``: a claimed fire, which may have
    started; one whose instant is still ahead is only a reservation."""
    return is_reserved_fire(run) and run.not_before is not None and run.not_before <= now


def instant_came_rows(now: Any) -> sa.ColumnElement[bool]:
    """The rows ``instant_came`` tells; ``now`` a datetime or the database's clock."""
    return sa.and_(reserved_rows(), _RUNS.c.not_before <= now)


# -- letting one go -------------------------------------------------------------------


def may_discard(run: AnyRun) -> bool:
    """Whether an unused reservation's row is deleted: only while nothing started it."""
    return run.status == Status.PENDING


def discardable_rows() -> sa.ColumnElement[bool]:
    """The rows ``may_discard`` tells."""
    return _RUNS.c.status == Status.PENDING


def may_take_over(held: AnyRun, node: str) -> bool:
    """Whether ``node``'s new row of a fire replaces ``held``, the row the fire has:
    only if it is the node's own unused reservation."""
    return held.node == node and is_reserved_fire(held)


def take_over_rows(new: Any) -> sa.ColumnElement[bool]:
    """The rows ``may_take_over`` tells, for an upsert whose new row is ``new`` (its
    ``excluded``)."""
    return sa.and_(_RUNS.c.node == new.node, reserved_rows())


# -- what readers see ---------------------------------------------------------------


def is_listed(run: AnyRun, now: datetime) -> bool:
    """Whether ``run`` exists by ``now`` for whoever reads runs: a reservation does
    from its instant on."""
    return run.created_at <= now


def listed_rows(now: datetime, until: datetime | None = None) -> sa.ColumnElement[bool]:
    """The rows ``is_listed`` tells, created by ``until`` at the latest as well.

    A range on created_at, which every index of the runs table ends with (a condition
    on status as well was checked row by row: a count of 1,000,000 runs took 72 ms);
    and one bound merged with a listing's own end date, as two would leave the
    planner one range and the other checked row by row."""
    return _RUNS.c.created_at <= (now if until is None else min(until, now))


def ahead_rows(now: datetime) -> sa.ColumnElement[bool]:
    """The reservations whose instant is still ahead of ``now``: what a total
    subtracts from the filter's count (an unfiltered count stays the count of the
    smallest index: 25 ms at 1,000,000 runs, where a bound checked row by row took
    64)."""
    return _RUNS.c.created_at > now
