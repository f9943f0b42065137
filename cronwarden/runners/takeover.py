"""Runs that change hands: left by a previous life of this daemon (adopted, ended as
orphans, resumed), taken over from a node declared dead, or given up to a survivor
that took this node over while it was cut off.

* ``adopt``: a process that outlived the previous life is watched to its end; it holds
  its slot and places whatever the limits say now.
* ``end_orphan``: a run no live process belongs to ends (crashed); retries apply.
* ``resume_pending``: a delayed run waits again for its time, then admission.
* ``taken_over``: a dead node's runs, ended as crashed by the takeover itself, retry
  here by policy; its delayed runs wait here.  A run of the dead node's own fire
  (on_every_node) is not retried here: it was that host's (cronwarden/placement.py).
* ``abandon``: the ``abandoned`` event of the runs a survivor ended: their processes
  are stopped and nothing about them is recorded or retried here.
* ``stop_leftover``: the process of a run a survivor ended while this node was down
  is stopped as a timeout would stop it, recording nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from cronwarden.config import TaskConfig
from cronwarden.live_config import LiveConfig
from cronwarden.model import EndReason
from cronwarden.placement import ANY_NODE
from cronwarden.run_record import AnyRun, RunRecord
from cronwarden.runners.carried import Background, Carried
from cronwarden.runners.endings import log_end
from cronwarden.runners.execute import terminate
from cronwarden.runners.gate import Gate
from cronwarden.runners.launch import Ending, Launcher, limits
from cronwarden.runners.life import Changed, Lives
from cronwarden.runners.lifecycle import RunEvent, RunHandle, RunState
from cronwarden.runners.outcome import Outcome
from cronwarden.runners.process import AdoptedProcess

log = structlog.get_logger("cronwarden.dispatch")


class Takeover:
    def __init__(
        self,
        *,
        config: LiveConfig,
        gate: Gate,
        launcher: Launcher,
        carried: Carried,
        lives: Lives,
        changed: Changed,
        background: Background,
    ) -> None:
        self._config = config
        self._gate = gate
        self._launcher = launcher
        self._carried = carried
        self._lives = lives
        self._changed = changed
        self._background = background

    def adopt(self, run: AnyRun, process: AdoptedProcess) -> None:
        """Take back a run whose process outlived the previous daemon life."""
        self._lives.begin(self._seated(run), process)
        log.info("run.adopted", task=run.task_name, run_id=run.id, pid=run.pid)

    async def end_orphan(self, run: AnyRun, reason: EndReason, error: str) -> None:
        """End a run no live process belongs to (left by a previous life); retries apply."""
        handle = self._seated(run)
        summary = self._launcher.close_inherited_log(run.id, error)
        await self._lives.end(
            handle, RunEvent.EXITED, Ending(Outcome(reason, error=error), summary)
        )

    def resume_pending(self, run: AnyRun) -> None:
        """A pending run a previous life left waiting for its time (a delayed retry):
        it waits again, then goes through admission like any other start."""
        task = self._config.tasks.get(run.task_name)
        if task is None:
            raise ValueError(f"resume_pending needs a configured task, not {run.task_name!r}")
        self._lives.delay(RunHandle(RunRecord.of(run), task))

    async def taken_over(self, crashed: Sequence[AnyRun], pending: Sequence[AnyRun]) -> None:
        """Runs of a node declared dead, taken over here: those it ran were ended as
        crashed in the takeover itself (their retries run here, by policy); its waiting
        retries wait here for their time."""
        for ended in map(RunRecord.of, crashed):
            self._changed("run.ended", ended)
            log_end(ended, log.warning)
            if ended.fire_node == ANY_NODE:
                await self._lives.retry(ended)
                asks = self._lives.chains_of(ended)
                if asks:
                    await self._lives.start_chains(ended, asks)
            else:
                log.info("run.not_retried_here", task=ended.task_name, run_id=ended.id)
        for run in pending:
            if run.task_name in self._config.tasks and run.id not in self._carried:
                self.resume_pending(run)

    def abandon(self, run_ids: Sequence[str]) -> None:
        """Runs a survivor ended while this node was cut off (it took them over)."""
        for run_id in run_ids:
            handle = self._carried.get(run_id)
            if handle is None or not handle.can(RunEvent.ABANDONED):
                continue  # not carried, or its end is being recorded already
            if handle.apply(RunEvent.ABANDONED) is RunState.GIVEN_UP:  # it was waiting
                self._lives.give_up(handle)
            else:
                handle.control.stop.set()
            log.warning("run.abandoned", task=handle.task_name, run_id=run_id)

    def stop_leftover(self, run: AnyRun, process: AdoptedProcess) -> None:
        """A process of a run that a survivor ended while this node was down: stopped
        as a timeout would stop it, recording nothing (the row is the survivor's)."""
        task = self._config.tasks.get(run.task_name) or removed_task(run.task_name)
        log.warning(
            "run.leftover_stopped",
            task=run.task_name,
            run_id=run.id,
            pid=run.pid,
            why="another node took this run over while this node was down",
        )
        self._background.spawn(terminate(process, process.exited, limits(task)))

    def _seated(self, run: AnyRun) -> RunHandle:
        """A handle for a run a previous life started: it holds its slot and places."""
        task = self._config.tasks.get(run.task_name) or removed_task(run.task_name)
        handle = RunHandle(RunRecord.of(run), task)
        self._carried.add(handle)
        self._gate.seat(run.id, run.task_name)
        handle.apply(RunEvent.ADOPTED)
        return handle


def removed_task(name: str) -> TaskConfig:
    """Stand-in definition for a run whose task left the config: default limits, no retry."""
    return TaskConfig(name=name, command="true")
