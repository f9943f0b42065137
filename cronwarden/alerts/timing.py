"""The alert rules on a run's times, each raised at most once per run:

* ``min_duration``: run.too_short, a run that succeeded quicker than this (a backup
  that found nothing to copy, a job that exits 0 before doing its work);
* ``max_duration``: run.too_long, a run still running this long after its start.  An
  alert only: the run goes on (``timeout`` is what stops one);
* ``start_grace``: fire.late, a scheduled run not started this long after its time
  (its scheduled_for plus the task's jitter offset, the instant it was meant to start):
  queued behind an earlier run (overlap), waiting for a lock, a pool or the host's
  max_concurrent_runs, or slow to spawn.  Fires the daemon slept through are
  fire.missed, not late; retries wait by design and are never late.

Pure: when each is due and what it says.  The caller owns the clock and the timers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cronwarden.alerts.rules import AlertEvent, describe_end
from cronwarden.config import TaskConfig
from cronwarden.model import EndReason, Trigger
from cronwarden.run_record import AnyRun
from cronwarden.scheduler.policies import jitter_offset
from cronwarden.support.timefmt import iso_z
from cronwarden.support.units import format_duration


def too_short_event(
    run: AnyRun, run_json: dict[str, Any], limit: timedelta, now: datetime
) -> AlertEvent | None:
    """run.too_short for a success that took less than ``limit`` (0: off), else None."""
    if limit <= timedelta(0) or run.end_reason != EndReason.SUCCESS or run.duration_ms is None:
        return None
    took = timedelta(milliseconds=run.duration_ms)
    if took >= limit:
        return None
    return AlertEvent(
        event="run.too_short",
        task=run.task_name,
        at=now,
        message=(
            f"{describe_end(run)} after {_seconds(took)}, "
            f"under min_duration = {format_duration(limit)}"
        ),
        run=run_json,
        details={"duration_s": took.total_seconds(), "min_duration_s": limit.total_seconds()},
    )


def too_long_at(run: AnyRun, limit: timedelta, now: datetime) -> datetime | None:
    """When a running run becomes too long (0: off): ``limit`` after its start (a run
    re-adopted after a restart keeps its real start)."""
    if limit <= timedelta(0):
        return None
    return (run.start_at or now) + limit


def too_long_event(
    run: AnyRun, run_json: dict[str, Any], limit: timedelta, now: datetime
) -> AlertEvent:
    running_for = now - (run.start_at or now)
    return AlertEvent(
        event="run.too_long",
        task=run.task_name,
        at=now,
        message=(
            f"{run.task_name} has been running for {_seconds(running_for)} "
            f"(max_duration = {format_duration(limit)}); it goes on running"
        ),
        run=run_json,
        details={
            "running_for_s": round(running_for.total_seconds(), 3),
            "max_duration_s": limit.total_seconds(),
        },
    )


def late_at(run: AnyRun, task: TaskConfig) -> datetime | None:
    """When a scheduled run that has not started is late, or None when the rule does
    not watch it (start_grace off, not a scheduled fire, a retry)."""
    grace = task.start_grace
    if (
        grace <= timedelta(0)
        or run.triggered_by != Trigger.SCHEDULE
        or run.scheduled_for is None
        or run.attempt != 1
    ):
        return None
    return run.scheduled_for + jitter_offset(task.name, task.jitter) + grace


def late_event(
    run: AnyRun, run_json: dict[str, Any], task: TaskConfig, now: datetime
) -> AlertEvent:
    """fire.late: said when the grace ran out with the run waiting, or when the run
    started past it (a loop held up past the instant sees the start first)."""
    assert run.scheduled_for is not None
    meant = run.scheduled_for + jitter_offset(task.name, task.jitter)
    grace = format_duration(task.start_grace)
    if run.start_at is None:
        what = f"has not started {_seconds(now - meant)} after its scheduled time"
        late_by = now - meant
    else:
        late_by = run.start_at - meant
        what = f"started {_seconds(late_by)} after its scheduled time"
    return AlertEvent(
        event="fire.late",
        task=run.task_name,
        at=now,
        message=f"{run.task_name} {what} {iso_z(run.scheduled_for)} (start_grace = {grace})",
        run=run_json,
        details={
            "scheduled_for": iso_z(run.scheduled_for),
            "late_s": round(late_by.total_seconds(), 3),
            "start_grace_s": task.start_grace.total_seconds(),
        },
    )


def _seconds(span: timedelta) -> str:
    """A span as people read it: whole seconds, or tenths under ten seconds."""
    seconds = span.total_seconds()
    if seconds < 10:
        return f"{max(seconds, 0):.1f}s"
    return format_duration(timedelta(seconds=int(seconds)))
