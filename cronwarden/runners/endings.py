"""How runs end without a process to say so, and what an end writes: the outcomes of
refusals and stops, the fields of an end record, the ``run.ended`` log line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from cronwarden.config import TaskConfig
from cronwarden.model import EndReason, Status
from cronwarden.run_record import RunRecord
from cronwarden.runlog.summary import LogSummary
from cronwarden.runners.admission import Verdict
from cronwarden.runners.cost import RunCost
from cronwarden.runners.launch import NO_LOG
from cronwarden.runners.outcome import Outcome
from cronwarden.support.timefmt import iso_z

INTERRUPTED = Outcome(EndReason.CRASHED, error="the run was interrupted")
SHUT_DOWN = "the daemon shut down before it started"


def expired(run: RunRecord) -> Outcome:
    """A run whose ttl passed before it started."""
    when = iso_z(run.expires_at) if run.expires_at is not None else "its expires_at"
    return Outcome(EndReason.EXPIRED, error=f"not started within its ttl (it expired at {when})")


def stopped(why: str) -> Outcome:
    return Outcome(EndReason.STOPPED, error=why)


def refusal(task: TaskConfig, verdict: Verdict, elsewhere: int = 0) -> str:
    """Why admission turned a run away (SKIP or REFUSE), in the words an API answer and
    a skipped run's error both use."""
    if verdict is Verdict.SKIP:
        on_others = f", {elsewhere} of them on other nodes" if elsewhere else ""
        return (
            f"task {task.name!r} already has {task.max_concurrent} active "
            f"run{'s' if task.max_concurrent != 1 else ''}{on_others} (overlap = skip)"
        )
    return f"task {task.name!r} has a full queue (queue_max = {task.queue_max})"


def skipped(task: TaskConfig, verdict: Verdict, elsewhere: int = 0) -> Outcome:
    return Outcome(EndReason.SKIPPED, error=f"skipped: {refusal(task, verdict, elsewhere)}")


def set_ended(
    run: RunRecord,
    outcome: Outcome,
    summary: LogSummary = NO_LOG,
    *,
    now: datetime | None = None,
    cost: RunCost | None = None,
) -> dict[str, Any]:
    """Fill in a run's end; returns the fields to record (pid and start_at repeated in
    case the "started" write was lost).  ``cost``: what its process tree cost (None:
    unknown, a run that never started or was re-adopted)."""
    end = now or run.created_at
    began = run.start_at or run.created_at
    values: dict[str, Any] = {
        "status": Status.ENDED,
        "end_reason": outcome.end_reason,
        "exit_code": outcome.exit_code,
        "signal": outcome.signal,
        "error": outcome.error,
        "end_at": end,
        "duration_ms": max(0, round((end - began).total_seconds() * 1000)),
        "log_size": summary.size,
        "log_truncated": summary.truncated,
        "pid": run.pid,
        "start_at": run.start_at,
        "proc_started": run.proc_started,
        "not_before": None,
        "output_bytes": summary.output_bytes,
    }
    if cost is not None:
        values.update(cost.values())
    run.change(values)
    return values


def log_end(run: RunRecord, level: Callable[..., Any]) -> None:
    level(
        "run.ended",
        task=run.task_name,
        run_id=run.id,
        end_reason=run.end_reason,
        exit_code=run.exit_code,
        signal=run.signal,
        duration_ms=run.duration_ms,
        error=run.error,
    )
