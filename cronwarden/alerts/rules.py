"""What is worth an alert, and what the alert says: pure, so every rule is tested
without a clock, a network or a process.

A failed attempt that will be retried raises nothing: its retry may still succeed,
and an operator paged for every flaky attempt learns to ignore pages.  The attempt
that ends the chain raises the alert, naming its attempt number.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cronwarden.config import EventName, TaskConfig
from cronwarden.model import EndReason
from cronwarden.outcomes import FAILURE_END_REASONS
from cronwarden.retry_policy import should_retry
from cronwarden.run_record import AnyRun
from cronwarden.support.timefmt import iso_z, iso_z_or_none
from cronwarden.support.units import format_duration

_EVENT_OF_END: dict[str, EventName] = {
    EndReason.FAILED: "run.failed",
    EndReason.LOG_OVERFLOW: "run.failed",
    EndReason.TIMEOUT: "run.timeout",
    EndReason.CRASHED: "run.crashed",
    EndReason.EXPIRED: "run.expired",
}
# Outcomes after which a success counts as a recovery: the failures (outcomes.py).
FAILING = frozenset(FAILURE_END_REASONS)


@dataclass(frozen=True)
class AlertEvent:
    """One alert, as every target receives it (JSON body / stdin, and env)."""

    event: EventName
    task: str
    at: datetime
    message: str
    run: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))  # the same across retries

    def body(self, node: str, log_url: str | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "task": self.task,
            "at": iso_z(self.at),
            "node": node,
            "message": self.message,
            "run": self.run,
            "log_url": log_url,
            "details": self.details,
            "output": None,  # the run's output excerpt, for the events that carry one
        }


def end_event(run: AnyRun, task: TaskConfig | None) -> EventName | None:
    """The alert a run's end raises, if any (None while a retry is still to come)."""
    event = _EVENT_OF_END.get(run.end_reason or "")
    if event is None:
        return None
    if task is not None and should_retry(
        run.end_reason or "", attempt=run.attempt, retries=task.retries, retry_on=task.retry_on
    ):
        return None
    return event


def describe_end(run: AnyRun) -> str:
    """One line a person reads in a chat message or a mail subject."""
    what: dict[str, str] = {
        EndReason.FAILED: (
            f"failed with exit code {run.exit_code}"
            if run.exit_code is not None
            else f"was killed by signal {run.signal}"
            if run.signal is not None
            else "failed"
        ),
        EndReason.LOG_OVERFLOW: "was killed: its output passed max_log_size",
        EndReason.TIMEOUT: "timed out",
        EndReason.CRASHED: "crashed",
        EndReason.EXPIRED: "expired: it did not start within its ttl",
        EndReason.SUCCESS: "succeeded",
    }
    said = what.get(run.end_reason or "", run.end_reason or "ended")
    attempt = f" (attempt {run.attempt})" if run.attempt > 1 else ""
    error = f": {run.error}" if run.error else ""
    return f"{run.task_name} {said}{attempt}{error}"


def missed_event(task_name: str, runs: list[AnyRun], now: datetime) -> AlertEvent:
    """Missed fires of one task, gathered into one alert (catch-up records up to
    max_catch_up of them at once)."""
    fires = sorted(r.scheduled_for for r in runs if r.scheduled_for is not None)
    first, last = (fires[0], fires[-1]) if fires else (None, None)
    count = len(runs)
    noun = "fire" if count == 1 else "fires"
    # Why they were missed is the runs' own word: the daemon was down or asleep (a
    # catch-up), or the store could not be written past a fire's grace.
    note = next((r.error for r in reversed(runs) if r.error), None)
    return AlertEvent(
        event="fire.missed",
        task=task_name,
        at=now,
        message=f"{task_name} missed {count} {noun}" + (f": {note}" if note else ""),
        details={
            "missed": count,
            "first_scheduled_for": iso_z_or_none(first),
            "last_scheduled_for": iso_z_or_none(last),
            "run_ids": [r.id for r in runs],
            "note": note,
        },
    )


def stuck_event(
    run: AnyRun, run_json: dict[str, Any], limit: timedelta, now: datetime
) -> AlertEvent:
    running_for = now - (run.start_at or now)
    return AlertEvent(
        event="run.stuck",
        task=run.task_name,
        at=now,
        message=(
            f"{run.task_name} has been running for {format_duration(_whole(running_for))} "
            f"(stuck_after = {format_duration(limit)})"
        ),
        run=run_json,
        details={"running_for_s": round(running_for.total_seconds(), 3)},
    )


def overdue_event(
    task_name: str, last_success: datetime | None, since: datetime, within: timedelta, now: datetime
) -> AlertEvent:
    if last_success is None:
        what = f"has not succeeded since it was first watched at {iso_z(since)}"
    else:
        what = f"has not succeeded since {iso_z(last_success)}"
    return AlertEvent(
        event="task.overdue",
        task=task_name,
        at=now,
        message=f"{task_name} {what} (expect_success_within = {format_duration(within)})",
        details={
            "last_success_at": iso_z_or_none(last_success),
            "watched_since": iso_z(since),
            "expect_success_within_s": within.total_seconds(),
        },
    )


def recovered_event(run: AnyRun, run_json: dict[str, Any], after: str, now: datetime) -> AlertEvent:
    return AlertEvent(
        event="task.recovered",
        task=run.task_name,
        at=now,
        message=f"{run.task_name} succeeded again (after {after})",
        run=run_json,
        details={"after": after},
    )


def _whole(span: timedelta) -> timedelta:
    return timedelta(seconds=int(span.total_seconds()))
