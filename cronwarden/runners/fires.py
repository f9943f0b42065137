"""Scheduled fires: rows reserved ahead of their instants, fires due together admitted
and claimed in one write, fires that did not run recorded as missed.

* a timed fire: its reservation committed ahead of its instant (``reserve``; see
  cronwarden/reservations.py), then at the instant admission and the process
  (``fire_many`` with ``reserved``);
* an untimed or late fire: admission, then the pending row is committed, then the
  process.

A fire another node or an earlier life claimed is left out; a fire refused by overlap
is recorded as an ended/skipped run.

A daemon that starts runs more slowly than its schedules fire them (a loaded machine,
max_concurrent_runs full) keeps no backlog without bound: a scheduled fire of an
``overlap = "allow"`` task (the one policy with no bound of its own) is recorded
``missed``, naming the fire it is behind, while an earlier fire of the task on this
node has waited BEHIND_AFTER to start and still has not.  Each waiting fire would
otherwise hold a coroutine and a pending row: at 200 fires/s against 23 starts/s that
was 200,000 coroutines and 2 GB an hour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from cronwarden.config import TaskConfig
from cronwarden.durable import persist
from cronwarden.live_config import LiveConfig
from cronwarden.model import EndReason, Status, Trigger
from cronwarden.ports import RunRecords
from cronwarden.reservations import reserve
from cronwarden.run_record import RunRecord
from cronwarden.runners.admission import Verdict
from cronwarden.runners.endings import set_ended, skipped
from cronwarden.runners.gate import Gate
from cronwarden.runners.life import Changed, Lives
from cronwarden.runners.lifecycle import RunHandle, RunState
from cronwarden.runners.outcome import Outcome
from cronwarden.runners.rows import NewRuns
from cronwarden.support.clock import Clock
from cronwarden.support.turns import share_the_loop

log = structlog.get_logger("cronwarden.dispatch")

Fire = tuple[str, datetime, Trigger]  # task, nominal fire time, how it was triggered
SCHEDULED = frozenset({Trigger.SCHEDULE, Trigger.CATCH_UP})
# Where a claimed fire waits for its process to start.  Not CLAIMING: a fire whose
# claim waits on a database outage goes once the store answers, as DESIGN.md says
# (the outage's grace bounds that wait); QUEUED and DELAYED are bounded by policy.
NOT_YET_SPAWNED = frozenset({RunState.PLACING, RunState.STARTING})
# How long a fire may wait to start before the task's next fires are missed.  Missing
# the next fire as soon as the previous one had not started (the first rule) turned a
# moment's wait into a lost fire: the 30 fires that waited out a database outage go
# together, and on a loaded machine the last of them was still spawning when the next
# second fired.  Longer lets an overloaded daemon fall further behind before it sheds
# fires: at 30 s the soak's runs all started up to 30 s late.
BEHIND_AFTER = timedelta(seconds=5)
# Fires admitted, or runs begun, between two turns of the event loop.  10,000 tasks on
# "* * * * *" are one batch: done in one go, their admission, their events and their
# runs' first steps held the loop for ~0.5 s twice over, and /health waited behind them.
TURN_SHARE = 100


@dataclass
class _Batch:
    """Fires due together, on their way to one write."""

    admitted: list[RunHandle] = field(default_factory=list)
    rows: list[RunRecord] = field(default_factory=list)  # to insert
    ours: list[RunRecord] = field(default_factory=list)  # reserved by this node
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)  # to reserved rows
    gone: list[str] = field(default_factory=list)  # reserved rows of removed tasks


class Fires:
    def __init__(
        self,
        *,
        records: RunRecords,
        config: LiveConfig,
        clock: Clock,
        new_run: NewRuns,
        gate: Gate,
        lives: Lives,
        changed: Changed,
    ) -> None:
        self._records = records
        self._config = config
        self._clock = clock
        self._new_run = new_run
        self._gate = gate
        self._lives = lives
        self._changed = changed
        # Per allow task: the oldest scheduled fire carried here that has not started,
        # and when it was admitted.
        self._unstarted: dict[str, tuple[RunHandle, datetime]] = {}

    async def prepare(self, task_names: Sequence[str]) -> None:
        """Hash the tasks' definitions ahead of their first fires.  A run records its
        definition's keyed hash, worked out once per definition: at a minute's boundary
        with 10,000 tasks first firing, that was ~1.5 s of the loop on a busy host,
        spent before the first of them could start."""
        for n, task_name in enumerate(task_names):
            await _share_the_loop(n)
            if self._lives.closing:
                return
            task = self._config.tasks.get(task_name)
            if task is not None:
                self._config.task_hash(task)

    async def reserve(
        self, fires: Sequence[tuple[str, datetime, datetime]]
    ) -> dict[str, RunRecord | None]:
        """Commit the reservations of scheduled fires (task, nominal fire time,
        instant); per task, the run reserved, or None when another node reserved the
        fire first.  Admission waits for the instant (fire_many)."""
        runs: dict[str, RunRecord] = {}
        for n, (task_name, scheduled_for, instant) in enumerate(fires):
            await _share_the_loop(n)
            task = self._config.tasks.get(task_name)
            if task is not None:
                run = self._new_run(task, Trigger.SCHEDULE, scheduled_for=scheduled_for)
                runs[task_name] = reserve(run, instant)
        claimed = await self._records.claim(list(runs.values())) if runs else set()
        return {name: run if run.id in claimed else None for name, run in runs.items()}

    async def fire_many(
        self,
        fires: Sequence[Fire],
        reserved: Mapping[tuple[str, datetime], RunRecord | None] | None = None,
    ) -> list[RunRecord]:
        """Fires due together: each goes through admission, then all are claimed in one
        write; returns the runs this node claimed.  Fires of tasks no longer configured
        are dropped.  ``reserved``: fires whose rows ``reserve`` committed already
        (None: another node's); those need no write before they start."""
        batch = _Batch()
        elsewhere = await self._gate.elsewhere([name for name, _, _ in fires])
        for n, (task_name, scheduled_for, trigger) in enumerate(fires):
            await _share_the_loop(n)
            row = self._row_of(batch, task_name, scheduled_for, trigger, reserved or {})
            if row is not None:
                self._admit(batch, *row, elsewhere.get(task_name, 0))
        try:
            claimed = await self._claim(batch)
        except BaseException:
            for handle in batch.admitted:
                self._lives.lose(handle)
            raise
        rows = batch.rows + batch.ours
        # Told before any run starts: a run started below may have ended (its status
        # ENDED) by the time the batch is through, and is no fire recorded ended.
        for run in rows:
            if run.id not in claimed:
                _log_already_claimed(run.task_name, run.scheduled_for, run.attempt)
            elif run.status == Status.ENDED:  # skipped by overlap, or missed: behind
                event = "fire.missed" if run.end_reason == EndReason.MISSED else "run.skipped"
                log.info(event, task=run.task_name, run_id=run.id, reason=run.error)
                self.created_ended(run)
        for n, handle in enumerate(batch.admitted):
            await _share_the_loop(n)
            if handle.id in claimed:
                self._lives.claimed(handle)
            else:
                self._lives.lose(handle)
        return [run for run in rows if run.id in claimed]

    async def record_missed(
        self, task_name: str, fires: list[datetime], *, more: int, why: str
    ) -> None:
        """Record fires that did not run as ended runs with end_reason ``missed``; the
        newest one says how many older ones of the same gap are not listed."""
        task = self._config.task(task_name)
        runs = []
        for i, fire in enumerate(fires):
            run = self._new_run(task, Trigger.SCHEDULE, scheduled_for=fire)
            error = f"missed: {why}"
            if more and i == len(fires) - 1:
                error += f"; {more} earlier fire{'s' if more != 1 else ''} of this gap "
                error += "were missed too and are not listed"
            set_ended(run, Outcome(EndReason.MISSED, error=error))
            runs.append(run)
        if runs:
            claimed = await persist(
                f"recording missed fires of {task_name}", lambda: self._records.claim(runs)
            )
            for run in runs:
                if run.id in claimed:
                    self.created_ended(run)

    def created_ended(self, run: RunRecord) -> None:
        """A run recorded already ended (skipped, missed): both of its changes at once,
        and what its end starts."""
        self._changed("run.created", run)
        self._changed("run.ended", run)
        asks = self._lives.chains_of(run)
        if asks:
            self._lives.background.spawn(self._lives.start_chains(run, asks))

    def _row_of(
        self,
        batch: _Batch,
        task_name: str,
        scheduled_for: datetime,
        trigger: Trigger,
        reserved: Mapping[tuple[str, datetime], RunRecord | None],
    ) -> tuple[RunRecord, TaskConfig] | None:
        """The fire's row (and task): its reservation brought up to date, or a new one;
        None when the fire does not happen here."""
        task = self._config.tasks.get(task_name)
        if (task_name, scheduled_for) not in reserved:
            if task is None:
                return None
            run = self._new_run(task, trigger, scheduled_for=scheduled_for)
            batch.rows.append(run)
            return run, task
        mine = reserved[(task_name, scheduled_for)]
        if mine is None:
            _log_already_claimed(task_name, scheduled_for, 1)
            return None
        if task is None:
            batch.gone.append(mine.id)
            return None
        batch.ours.append(mine)
        batch.changes[mine.id] = _brought_up_to_date(mine, self._config.task_hash(task), trigger)
        return mine, task

    def _admit(self, batch: _Batch, run: RunRecord, task: TaskConfig, elsewhere: int) -> None:
        bounded = task.overlap == "allow" and run.triggered_by in SCHEDULED
        previous = self._unstarted_fire(task.name) if bounded else None
        if previous is not None:
            self._end_unstarted(batch, run, _behind(previous))
            return
        handle = RunHandle(run, task)
        verdict = self._lives.admit(handle, elsewhere)
        if verdict in (Verdict.START, Verdict.QUEUE):
            batch.admitted.append(handle)
            if bounded:
                self._unstarted.setdefault(task.name, (handle, self._clock.now()))
            return
        self._end_unstarted(batch, run, skipped(task, verdict, elsewhere))

    def _unstarted_fire(self, task_name: str) -> RunHandle | None:
        """The task's oldest scheduled fire carried here, if it has waited BEHIND_AFTER
        to start and still has not."""
        waiting = self._unstarted.get(task_name)
        if waiting is None:
            return None
        handle, admitted = waiting
        if handle.state not in NOT_YET_SPAWNED:
            del self._unstarted[task_name]
            return None
        return handle if self._clock.now() - admitted >= BEHIND_AFTER else None

    def _end_unstarted(self, batch: _Batch, run: RunRecord, outcome: Outcome) -> None:
        """A fire that does not start: its row is recorded ended with the batch."""
        if run.id in batch.changes:  # reserved: the row is there, it ends now
            batch.changes[run.id].update(set_ended(run, outcome, now=self._clock.now()))
        else:
            set_ended(run, outcome)

    async def _claim(self, batch: _Batch) -> set[str]:
        """One commit for the whole batch (the recorder groups what is queued together)."""
        claimed = {run.id for run in batch.ours}
        if batch.rows:
            claimed |= await self._records.claim(batch.rows)
        await asyncio.gather(
            *(self._records.record(i, v) for i, v in batch.changes.items() if v),
            *([self._records.discard_reserved(batch.gone)] if batch.gone else []),
        )
        return claimed


def _brought_up_to_date(run: RunRecord, task_hash: str, trigger: Trigger) -> dict[str, Any]:
    """What changed for a reserved run by its instant: the task was reloaded, or the
    wake came too late for a plain fire (a catch-up run)."""
    values = {"task_hash": task_hash, "triggered_by": trigger}
    changed = {name: value for name, value in values.items() if getattr(run, name) != value}
    run.change(changed)
    return changed


async def _share_the_loop(done: int) -> None:
    """A turn of the loop every TURN_SHARE items of a large batch.  What may happen
    meanwhile already could while the batch's write was awaited: a stop or a shutdown
    finds the admitted runs carried, and a run claimed during a shutdown ends as
    stopped."""
    await share_the_loop(done, TURN_SHARE)


def _behind(previous: RunHandle) -> Outcome:
    fire = previous.run.scheduled_for
    when = f"{fire:%H:%M:%S} UTC" if fire is not None else "before"
    return Outcome(
        EndReason.MISSED,
        error=f"missed: the daemon is behind; the fire of {when} has waited over "
        f"{BEHIND_AFTER.seconds} s to start and has not (run {previous.id})",
    )


def _log_already_claimed(task_name: str, scheduled_for: datetime | None, attempt: int) -> None:
    log.info("fire.already_claimed", task=task_name, scheduled_for=scheduled_for, attempt=attempt)
