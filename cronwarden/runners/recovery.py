"""Start-up recovery: runs a previous daemon life left pending or running.

* A pending run with ``not_before`` is a retry waiting for its time: it was never
  started, so it waits again and then goes through admission like any other start.
* A scheduled fire reserved ahead of its instant whose instant has not come is
  deleted; one whose instant came is crashed, as below (see cronwarden/reservations.py).
* A running run whose pid is still alive with the same process start time is re-adopted:
  watched to its real end (timeout and stop still apply), its output read on from the
  pipes its keeper held (runners/keeping.py).
* Anything else ended with the old life: it becomes crashed, saying so in ``error``,
  and the task's retry policy applies.
* A run a surviving node took over while this one was down (its row ended crashed,
  its retry runs there) is not adopted: a process of it still alive is stopped, so the
  run does not go on twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

import structlog

from cronwarden.model import EndReason, Status
from cronwarden.reservations import instant_came, is_reserved_fire
from cronwarden.run_record import AnyRun
from cronwarden.runners.adoption import ExitWatcher
from cronwarden.runners.process import AdoptedProcess, ProcStat, proc_stat

log = structlog.get_logger("cronwarden.recovery")


class Recovering(Protocol):
    """What recovery asks of the dispatcher (see runners/takeover.py)."""

    def is_configured(self, task_name: str) -> bool: ...

    def resume_pending(self, run: AnyRun) -> None: ...

    def adopt(self, run: AnyRun, process: AdoptedProcess) -> None: ...

    async def end_orphan(self, run: AnyRun, reason: EndReason, error: str) -> None: ...

    def stop_leftover(self, run: AnyRun, process: AdoptedProcess) -> None: ...

    async def discard_reserved(self, run_ids: Sequence[str]) -> None: ...


async def recover(
    dispatcher: Recovering,
    runs: Sequence[AnyRun],
    *,
    now: datetime,
    taken_over: Sequence[AnyRun] = (),
    held: Callable[[str], tuple[int, ...]] = lambda run_id: (),
) -> ExitWatcher | None:
    """Settle ``runs``, this node's unfinished runs as the store has them; returns the
    watcher adopted runs use.  ``now``: reserved fires whose instant is later are
    deleted; ``taken_over``: this node's runs a survivor ended (see the module doc);
    ``held``: a run's pipes its keeper held (runners/keeping.py), for its adoption.

    The exit watcher opens before any liveness check, and every live pid is watched
    before the first await: the watcher only hears exits while the loop runs, so no
    exit can fall between "is it alive?" and "tell me when it ends".
    """
    leftovers = [r for r in taken_over if _same_process(r, ended=True) is not None]
    watcher = None
    if leftovers or any(r.status == Status.RUNNING and r.pid for r in runs):
        watcher = ExitWatcher.open()
    for run in leftovers:  # no await before every live pid is watched
        assert watcher is not None and run.pid is not None
        dispatcher.stop_leftover(run, AdoptedProcess(run.pid, watcher.watch(run.pid)))
    adopted: list[tuple[AnyRun, AdoptedProcess]] = []
    orphans: list[AnyRun] = []
    not_come: list[AnyRun] = []
    for run in runs:  # no await in this loop
        if is_reserved_fire(run):
            (orphans if instant_came(run, now) else not_come).append(run)
            continue
        if _resumed(dispatcher, run):
            continue
        stat = _same_process(run)
        if watcher is not None and stat is not None and run.pid is not None:
            exited = watcher.watch(run.pid)
            if stat.is_zombie and not exited.done():  # ended while no daemon watched it
                exited.set_result(stat.returncode)
            adopted.append((run, AdoptedProcess(run.pid, exited, held(run.id))))
        else:
            orphans.append(run)
    for run, process in adopted:
        dispatcher.adopt(run, process)
    if not_come:
        log.info("fire.reservations_discarded", runs=len(not_come))
        await dispatcher.discard_reserved([run.id for run in not_come])
    for run in orphans:
        await dispatcher.end_orphan(run, EndReason.CRASHED, _crash_reason(run))
    return watcher


def _resumed(dispatcher: Recovering, run: AnyRun) -> bool:
    """A retry that was waiting for its time waits again (its task still configured)."""
    if not (
        run.status == Status.PENDING
        and run.not_before is not None
        and dispatcher.is_configured(run.task_name)
    ):
        return False
    log.info(
        "run.resumed", task=run.task_name, run_id=run.id, not_before=run.not_before.isoformat()
    )
    dispatcher.resume_pending(run)
    return True


def _same_process(run: AnyRun, *, ended: bool = False) -> ProcStat | None:
    """The run's process if its pid still names it (same start time), zombie or alive;
    ``ended``: of a run whose row ended while its process went on (taken over)."""
    expected = Status.ENDED if ended else Status.RUNNING
    if run.status != expected or not run.pid or run.proc_started is None:
        return None
    stat = proc_stat(run.pid)
    return stat if stat is not None and stat.start_ticks == run.proc_started else None


def _crash_reason(run: AnyRun) -> str:
    if run.status == Status.RUNNING:
        return (
            f"the daemon stopped while the run was running (pid {run.pid}) and the "
            "process was gone when it restarted; its outcome is unknown"
        )
    return "the daemon stopped before the run started"
