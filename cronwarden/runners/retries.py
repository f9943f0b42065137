"""The retry decision after a run's end, and the retry's row.

Whether to retry is one pure rule (``cronwarden/retry_policy.py``, shared with alerts);
the delay is the task's backoff.  The retry is committed before anyone waits for it:
a pending row with ``not_before``, which a restarted daemon resumes (see recovery).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from cronwarden.config import TaskConfig
from cronwarden.durable import persist
from cronwarden.live_config import LiveConfig
from cronwarden.model import Trigger
from cronwarden.placement import runs_on
from cronwarden.ports import RunRecords
from cronwarden.retry_policy import should_retry
from cronwarden.run_record import RunRecord
from cronwarden.runners.rows import NewRuns
from cronwarden.support.backoff import backoff_delay

log = structlog.get_logger("cronwarden.dispatch")


class Retries:
    def __init__(self, records: RunRecords, config: LiveConfig, new_run: NewRuns) -> None:
        self._records = records
        self._config = config
        self._new_run = new_run

    def task_to_retry(self, run: RunRecord) -> TaskConfig | None:
        """The task's current definition if ``run``'s end asks for another attempt."""
        task = self._config.tasks.get(run.task_name)
        if task is None or run.end_reason is None:
            return None
        if not runs_on(task, self._new_run.node):
            # A node whose name the task's `nodes` does not match starts none of its
            # runs, a retry included (a takeover's survivor may be such a node).
            log.warning("run.retry_not_here", task=task.name, run_id=run.id)
            return None
        if not should_retry(
            run.end_reason, attempt=run.attempt, retries=task.retries, retry_on=task.retry_on
        ):
            return None
        return task

    async def schedule(
        self, run: RunRecord, is_closing: Callable[[], bool]
    ) -> tuple[RunRecord, TaskConfig] | None:
        """Commit the retry of ``run`` if its policy asks for one (not while the daemon
        shuts down); returns the retry, pending until its ``not_before``, and the
        definition it will run under."""
        task = None if is_closing() else self.task_to_retry(run)
        if task is None:
            return None
        delay = backoff_delay(
            run.attempt,
            delay=task.retry_delay,
            backoff=task.retry_backoff,
            max_delay=task.retry_max_delay,
        )
        retry = self._new_run(
            task,
            Trigger.RETRY,
            scheduled_for=run.scheduled_for,
            params=run.params,
            attempt=run.attempt + 1,
            retry_of=run.id,
            of_fire_node=run.fire_node,
            tags=run.tags,
            metadata=run.run_metadata,
        )
        retry.change({"not_before": retry.created_at + delay})
        committed = await persist(
            f"recording retry {retry.id}", lambda: self._records.claim([retry])
        )
        if retry.id not in committed:
            return None
        log.info(
            "run.retry_scheduled",
            task=task.name,
            run_id=retry.id,
            retry_of=run.id,
            attempt=retry.attempt,
            delay_s=delay.total_seconds(),
        )
        return retry, task
