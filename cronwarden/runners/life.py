"""A run's life, from admission to its retry, readable top to bottom in ``live``:

    admitted (holds its task's slot) -> its other places (PLACING) -> its report token
    -> a spawn turn -> spawn -> supervise (RUNNING) -> record the end (ENDING)
    -> release -> retry?

A run that never starts (stopped or removed while queued or delayed, refused at its
time) joins the same tail (``end``): record, release, retry.  What a run left in its
artifacts directory is listed before its end is recorded (runners/artifacts.py).
Whoever holds the slot keeps it until its end is durable, so the next run in line
starts only once its predecessor's outcome is committed.  The end is recorded under
``asyncio.shield``: a cancellation cannot lose it.

Waiting for a task slot (QUEUED) or for a time (DELAYED) needs no coroutine: a
released slot or the clock's timer moves the run on (``start_granted``, ``_due``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog

from cronwarden.chains import ChainAsk
from cronwarden.durable import persist
from cronwarden.errors import StoreUnavailable
from cronwarden.hub import RunChange
from cronwarden.live_config import LiveConfig
from cronwarden.model import EndReason, Status
from cronwarden.ports import RunRecords
from cronwarden.run_record import RunRecord
from cronwarden.runners.admission import Verdict
from cronwarden.runners.carried import Background, Carried
from cronwarden.runners.chaining import Chaining
from cronwarden.runners.endings import (
    INTERRUPTED,
    SHUT_DOWN,
    expired,
    log_end,
    set_ended,
    skipped,
    stopped,
)
from cronwarden.runners.expiry import Expiries
from cronwarden.runners.gate import Gate, Left, StoppedWaiting
from cronwarden.runners.launch import Ending, Launcher
from cronwarden.runners.lifecycle import RunEvent, RunHandle, RunState
from cronwarden.runners.outcome import Outcome
from cronwarden.runners.pacing import SpawnPacer
from cronwarden.runners.process import AdoptedProcess
from cronwarden.runners.reports import ensure_report_token
from cronwarden.runners.retries import Retries
from cronwarden.support.clock import Clock

log = structlog.get_logger("cronwarden.dispatch")

Changed = Callable[[RunChange, RunRecord], None]


class Lives:
    def __init__(
        self,
        *,
        records: RunRecords,
        config: LiveConfig,
        gate: Gate,
        launcher: Launcher,
        clock: Clock,
        carried: Carried,
        retries: Retries,
        chaining: Chaining,
        changed: Changed,
        background: Background,
    ) -> None:
        self.records = records
        self.config = config
        self.gate = gate
        self.launcher = launcher
        self.clock = clock
        self.carried = carried
        self.retries = retries
        self.chaining = chaining
        self.changed = changed
        self.background = background
        self.pacer = SpawnPacer()
        self.expiries = Expiries(clock, self.cancel, background, lambda: self.closing)
        self.closing = False  # the daemon shuts down: nothing new starts
        # Start-up failed: the next life adopts every run, nothing is known here.
        self.detached = False

    # -- the life ---------------------------------------------------------------------

    def begin(self, handle: RunHandle, process: AdoptedProcess | None = None) -> None:
        """Carry a run that holds its task's slot (or an adopted ``process``) to its end."""
        handle.job = asyncio.get_running_loop().create_task(
            self.live(handle, process), name=f"run {handle.id}"
        )

    async def live(self, handle: RunHandle, process: AdoptedProcess | None = None) -> None:
        ending = Ending(INTERRUPTED)
        try:
            if process is not None:  # adopted: its process runs already
                ending = await self.launcher.watch(handle.run, handle.task, handle.control, process)
                return
            refused = await self.gate.enter(handle)
            if refused is not None:
                ending = Ending(refused)
                return
            if _abandoned(handle):
                return
            await ensure_report_token(self.records, handle.run)
            handle.apply(RunEvent.PLACED)
            await self.pacer.turn()
            if _abandoned(handle):
                return
            if handle.control.stop.is_set():  # stopped in line to spawn: never spawned
                raise StoppedWaiting("its turn to start")
            ending = await self.launcher.run(
                handle.run, handle.task, handle.control, partial(self._started, handle)
            )
        except StoppedWaiting as waiting:
            ending = Ending(self._not_started(handle, waiting.waits_for))
        except asyncio.CancelledError:
            ending = Ending(stopped("the daemon stopped the run"))
            raise
        except Exception as exc:
            log.exception("run.internal_error", task=handle.task_name, run_id=handle.id)
            ending = Ending(
                Outcome(EndReason.CRASHED, error=f"cronwarden failed to run it: {exc!r}")
            )
        finally:
            await asyncio.shield(self.end(handle, RunEvent.EXITED, ending))

    async def end(self, handle: RunHandle, event: RunEvent, ending: Ending) -> None:
        """Record the outcome (until it lands), then free the slot, then retry.  An
        abandoned run's end belongs to the survivor that took it over: only released."""
        if self.detached:
            return
        # Synchronously: a second stop now finds the run ENDING.
        if handle.apply(event) is RunState.GIVEN_UP:
            await self._release(handle).tell()
            return
        run = handle.run
        end_at = self._end_at(run, ending)  # before the listing: it takes time
        if self.launcher.artifacts is not None:  # what the run left, listed first
            await self.launcher.artifacts.collect(run, handle.task)
        values = set_ended(run, ending.outcome, ending.log, now=end_at, cost=ending.cost)
        asks = self.chains_of(run)
        chained: list[dict[str, Any]] = []
        try:
            chained = await persist(
                f"recording the end of run {run.id}",
                lambda: self.records.record_end(run.id, values, asks),
            )
        except Exception:
            log.exception("run.end_not_recorded", task=run.task_name, run_id=run.id)
            handle.apply(RunEvent.RECORD_FAILED)
        else:
            handle.apply(RunEvent.RECORDED)
            self.changed("run.ended", run)
        await self._release(handle).tell()
        for row in chained:
            self._chained(RunRecord(**row))
        log_end(run, log.info)
        await self.retry(run)

    async def retry(self, run: RunRecord) -> None:
        """The retry decision: a retry is committed, then waits for its time."""
        scheduled = await self.retries.schedule(run, lambda: self.closing)
        if scheduled is not None:
            self.delay(RunHandle(*scheduled))

    async def cancel(self, handle: RunHandle, outcome: Outcome) -> None:
        """End a run that never started (stopped, removed, refused, shut down)."""
        if handle.can(RunEvent.CANCELLED):
            await self.end(handle, RunEvent.CANCELLED, Ending(outcome))

    # -- from admission to the slot ---------------------------------------------------

    def admit(self, handle: RunHandle, elsewhere: int = 0) -> Verdict:
        """Ask the gate for the task's slot; a run admitted (to start or to wait in
        line) is carried from now on, while its row is committed."""
        verdict = self.gate.admit(handle.id, handle.task_name, elsewhere)
        if verdict in (Verdict.START, Verdict.QUEUE):
            self.carried.add(handle)
            self.expiries.watch(handle)
        return verdict

    def claimed(self, handle: RunHandle) -> None:
        """The run's row is durable: it starts if it holds a slot, else waits in line."""
        self.changed("run.created", handle.run)
        holds = self.gate.holds_slot(handle.id, handle.task_name)
        handle.apply(RunEvent.CLAIMED_TO_START if holds else RunEvent.CLAIMED_TO_QUEUE)
        if self.closing:
            event = RunEvent.EXITED if holds else RunEvent.CANCELLED
            self.background.spawn(self.end(handle, event, Ending(stopped(SHUT_DOWN))))
        elif holds:
            self.begin(handle)
        elif handle.control.stop.is_set():  # stopped while its row was being committed
            outcome = self._not_started(handle, "its record to be committed")
            self.background.spawn(self.cancel(handle, outcome))
        else:
            self._wait_in_line(handle)

    def claimed_delayed(self, handle: RunHandle) -> None:
        """A run triggered for later is durable: it waits for its time, then admission."""
        self.changed("run.created", handle.run)
        if self.closing:
            self.background.spawn(self.cancel(handle, stopped(SHUT_DOWN)))
            return
        self.delay(handle)

    def lose(self, handle: RunHandle) -> None:
        """The claim did not become ours: give back what admission gave."""
        handle.apply(RunEvent.CLAIM_LOST)
        self._release(handle)

    def give_up(self, handle: RunHandle) -> None:
        """A waiting run that a survivor took over: it leaves its line, records nothing
        (a waiting run holds no place that others wait for elsewhere)."""
        self._release(handle)

    def delay(self, handle: RunHandle) -> None:
        """A committed run waits for its time (``not_before``), then for admission."""
        self.carried.add(handle)
        handle.apply(RunEvent.CLAIMED_TO_DELAY)
        when = handle.run.not_before or self.clock.now()
        handle.timer = self.clock.call_at(when, partial(self._due, handle))
        self.expiries.watch(handle)

    def chains_of(self, run: RunRecord) -> list[ChainAsk]:
        """What the end of ``run`` starts.  Only a final outcome starts a chain: a run
        to be retried starts nothing."""
        if self.retries.task_to_retry(run) is not None:
            return []
        return self.chaining.asks(run)

    async def start_chains(self, run: RunRecord, asks: list[ChainAsk]) -> None:
        """The chained runs of an end recorded elsewhere than ``end``: a fire skipped or
        missed (created ended), a run a survivor ended as crashed in its takeover.
        Written right after that end, still once per cause (the unique cause)."""
        try:
            chained = await persist(
                f"recording what the end of run {run.id} starts",
                lambda: self.records.record_end(run.id, {"end_reason": run.end_reason}, asks),
            )
        except Exception:
            log.exception("run.chain_not_recorded", task=run.task_name, run_id=run.id)
            return
        for row in chained:
            self._chained(RunRecord(**row))

    def _chained(self, run: RunRecord) -> None:
        """A run the end of its cause created: due at once, through admission."""
        task = self.config.tasks.get(run.task_name)
        if task is None:  # removed by a reload meanwhile: recovery ends it at next start
            return
        self.changed("run.created", run)
        log.info("run.chained", task=run.task_name, run_id=run.id, caused_by=run.caused_by)
        self.delay(RunHandle(run, task))

    def start_granted(self, run_ids: list[str]) -> None:
        """Runs in line that were handed a slot (a CLAIMING one starts once committed)."""
        for run_id in run_ids:
            granted = self.carried[run_id]
            if granted.state is RunState.QUEUED:
                granted.apply(RunEvent.SLOT_GRANTED)
                self.begin(granted)

    def _due(self, handle: RunHandle) -> None:
        """A delayed run's time came (retry delay, recovered pending run)."""
        handle.timer = None
        if handle.state is not RunState.DELAYED or self.closing:
            return
        if handle.task_name not in self.config.tasks:
            why = f"task {handle.task_name!r} is no longer in the config"
            self.background.spawn(self.cancel(handle, stopped(why)))
            return
        verdict = self.gate.admit(handle.id, handle.task_name)
        if verdict is Verdict.START:
            handle.apply(RunEvent.SLOT_GRANTED)
            self.begin(handle)
        elif verdict is Verdict.QUEUE:
            handle.apply(RunEvent.LINED_UP)
            self._wait_in_line(handle)
        else:
            self.background.spawn(self.cancel(handle, skipped(handle.task, verdict)))

    def _wait_in_line(self, handle: RunHandle) -> None:
        log.info("run.queued", task=handle.task_name, run_id=handle.id)
        if handle.task.overlap != "terminate":
            return
        eviction = self.gate.evict_for(handle.id, handle.task_name)
        for run_id in eviction.stop:
            log.info("run.terminating", task=handle.task_name, run_id=run_id, for_run=handle.id)
            self.carried[run_id].control.stop.set()
        for run_id in eviction.supersede:
            why = f"replaced by the newer run {handle.id} (overlap = terminate)"
            self.background.spawn(self.cancel(self.carried[run_id], stopped(why)))

    # -- helpers ------------------------------------------------------------------------

    def _release(self, handle: RunHandle) -> Left:
        """Give back the run's slot and places (or its place in line) and start whoever
        its slot goes to."""
        self.carried.pop(handle.id)
        left = self.gate.leave(handle)
        self.start_granted(left.granted)
        return left

    def _not_started(self, handle: RunHandle, for_what: str) -> Outcome:
        """How a run stopped before it started ends: expired, shut down, or stopped."""
        if handle.expired:
            return expired(handle.run)
        return stopped(SHUT_DOWN if self.closing else f"stopped while waiting for {for_what}")

    def _end_at(self, run: RunRecord, ending: Ending) -> datetime:
        """The kernel's time of the exit where it tells, not when the daemon saw it."""
        end = self.clock.now()
        if ending.exited_ago is not None:
            end = max(run.start_at or end, end - timedelta(seconds=ending.exited_ago))
        return end

    def _started(self, handle: RunHandle, pid: int, start_ticks: Callable[[], int | None]) -> None:
        if handle.state is RunState.ABANDONING:  # the row is the survivor's now
            return
        handle.apply(RunEvent.SPAWNED)
        run = handle.run
        run.change({"status": Status.RUNNING, "pid": pid, "start_at": self.clock.now()})
        self.background.spawn(self._record_started(run, start_ticks))
        # Told at the spawn, not once the write lands: a short run may end first.
        self.changed("run.started", run)
        log.info(
            "run.started",
            task=run.task_name,
            run_id=run.id,
            pid=pid,
            attempt=run.attempt,
            triggered_by=run.triggered_by,
        )

    async def _record_started(self, run: RunRecord, start_ticks: Callable[[], int | None]) -> None:
        """Record pid and start time, and the process start time that lets a restarted
        daemon recognise the pid as this run's.  Read here rather than at the spawn:
        /proc of a process still in exec is slow to read, and a spawn burst waits."""
        if run.proc_started is None:
            run.change({"proc_started": start_ticks()})
        values = {
            "status": Status.RUNNING,
            "pid": run.pid,
            "start_at": run.start_at,
            "proc_started": run.proc_started,
        }
        try:
            await self.records.record(run.id, values)
        except StoreUnavailable as exc:
            # The process runs on; its end record carries pid and start time as well.
            log.warning("run.start_not_recorded", task=run.task_name, run_id=run.id, error=str(exc))


def _abandoned(handle: RunHandle) -> bool:
    """Whether a survivor took the run over while it waited (its process must not start)."""
    return handle.state is RunState.ABANDONING
