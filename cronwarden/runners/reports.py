"""The run core's side of what a job reports (its stage, progress and output, through
``PATCH /api/runs/{id}`` with its run's token; cronwarden/run_tokens.py): each run
starts with a token, and a report, once written, reaches the record this node carries.

The report itself is written by whichever node the job asked (the row is in the
shared database); the node that carries the run writes its own fields at its end and
never these, so nothing it writes later undoes a report.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from cronwarden.errors import StoreUnavailable
from cronwarden.hub import RunChange
from cronwarden.ports import RunRecords
from cronwarden.run_record import AnyRun, RunRecord
from cronwarden.run_tokens import new_token, token_digest
from cronwarden.runners.carried import Carried

log = structlog.get_logger("cronwarden.dispatch")

REPORTED_FIELDS = ("stage", "progress", "output")


async def ensure_report_token(records: RunRecords, run: RunRecord) -> None:
    """Give a run about to start a token, if it has none: a run whose row was made
    elsewhere than in this life's memory (chained in the store, resumed at start-up,
    taken over) kept only a hash.  The new hash is durable before the process that
    holds the token starts; without a database the run starts without one (its job
    cannot report, and says so)."""
    if run.report_token is not None:
        return
    token = new_token(run.id)
    digest = token_digest(token)
    try:
        await records.record(run.id, {"report_token_sha256": digest})
    except StoreUnavailable as exc:
        log.warning(
            "run.report_token_not_recorded", task=run.task_name, run_id=run.id, error=str(exc)
        )
        return
    run.change({"report_token": token, "report_token_sha256": digest})


class RunReports:
    """Reports written to the store, told: the record of a run this node carries takes
    them (its later events, end included, and ``?wait`` answers show them), then the
    subscribers of run changes hear ``run.reported``."""

    def __init__(self, carried: Carried, changed: Callable[[RunChange, RunRecord], None]) -> None:
        self._carried = carried
        self._changed = changed

    def reported(self, run: AnyRun) -> None:
        """``run`` as read back after its report was written."""
        handle = self._carried.get(run.id)
        if handle is None:  # carried by another node, or ending: told as read
            self._changed("run.reported", RunRecord.of(run))
            return
        # Only what changed: an output reported once and then left alone stays one
        # string, however many progress reports (and events holding it) follow.
        carried = handle.run
        now = {name: getattr(run, name) for name in REPORTED_FIELDS}
        changes = {name: v for name, v in now.items() if v != getattr(carried, name)}
        carried.change(changes)
        self._changed("run.reported", carried)
