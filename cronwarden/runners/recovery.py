"""Start-up recovery: runs a previous daemon life left pending or running."""

from __future__ import annotations

import structlog

from cronwarden.model import EndReason, Status
from cronwarden.runners.dispatch import Dispatcher

log = structlog.get_logger("cronwarden.recovery")


async def recover(dispatcher: Dispatcher) -> None:
    """Resume delayed retries; end everything else as crashed (retry policy applies).

    A pending run with ``not_before`` is a retry waiting for its time: it was never
    started, so it simply runs at its due time in this life.
    """
    for run in await dispatcher.store.unfinished_runs(dispatcher.node):
        task = dispatcher.tasks.get(run.task_name)
        if run.status == Status.PENDING and run.not_before is not None and task is not None:
            log.info(
                "run.resumed",
                task=run.task_name,
                run_id=run.id,
                not_before=run.not_before.isoformat(),
            )
            dispatcher.schedule_pending(run, task)
            continue
        was = f"running (pid {run.pid})" if run.status == Status.RUNNING else "pending"
        error = f"the daemon stopped while the run was {was}; its outcome is unknown"
        await dispatcher.end_orphan(run, EndReason.CRASHED, error)
