"""The dispatcher: the run core's one front, composed of parts that each receive what
they need (nothing reaches through this object to another part's state).

    fires.py     scheduled fires: reservations, fires due together, missed fires
    requests.py  runs on request: params, Idempotency-Key (trigger, rerun)
    gate.py      the one admission gate: task slots, then every place (places.py)
    life.py      a run's life top to bottom: places, pacing (pacing.py), spawn,
                 supervision, its end recorded, release, retry decision (retries.py)
    reports.py   what a run's job reports, reaching the record carried here
    takeover.py  runs changing hands: adopted, orphaned, resumed, taken over, abandoned
    carried.py   the runs carried (one RunHandle each, lifecycle.py) and read-only views

Every path that may start a process asks the gate first, synchronously, so no path
can bypass max_concurrent or overlap; stop, timeout, reload-removal, shutdown and
abandonment are events of each run's state machine, so a run ends exactly once and
frees its slot exactly once.  Records go through ``RunRecords`` (cronwarden/ports.py;
group-committed on SQL).  The scheduler sees this object only through its port
(scheduler/ports.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Unpack

import structlog

from cronwarden.errors import CarriedElsewhere, Conflict, ShuttingDown
from cronwarden.hub import RunChange
from cronwarden.live_config import ConfigChanges, LiveConfig
from cronwarden.model import EndReason, Status, Trigger
from cronwarden.ports import Holds, RunRecords, SharedPlaces
from cronwarden.run_record import AnyRun, RunRecord
from cronwarden.runners.carried import Background, Carried, RunView
from cronwarden.runners.chaining import Chaining
from cronwarden.runners.endings import SHUT_DOWN, stopped
from cronwarden.runners.fires import Fires
from cronwarden.runners.gate import Gate, Place
from cronwarden.runners.holds import HoldPlace
from cronwarden.runners.launch import Launcher
from cronwarden.runners.life import Lives
from cronwarden.runners.lifecycle import RunEvent, RunHandle, RunState
from cronwarden.runners.places import HostPlace, LeasePlace, SharedPlace
from cronwarden.runners.process import AdoptedProcess
from cronwarden.runners.reports import RunReports
from cronwarden.runners.requests import Asked, Requests
from cronwarden.runners.retries import Retries
from cronwarden.runners.rows import NewRuns
from cronwarden.runners.takeover import Takeover
from cronwarden.support.clock import Clock

log = structlog.get_logger("cronwarden.dispatch")


class Dispatcher:
    def __init__(
        self,
        records: RunRecords,
        config: LiveConfig,
        *,
        node: str,
        launcher: Launcher,
        clock: Clock,
        on_change: Callable[[RunChange, RunRecord], None] | None = None,
        places: SharedPlaces | None = None,
        holds: Holds | None = None,
        on_held: Callable[[str, float], None] | None = None,
    ) -> None:
        """``places``: across nodes (shared database); ``holds``: locks and pools."""
        self._records = records
        self._config = config
        self._carried = Carried()
        self._background = Background()
        self._host = HostPlace(config.current.daemon.max_concurrent_runs)
        # Several nodes share the database: a limited task's places are counted there.
        self._shared = None if places is None else SharedPlace(places, node)
        self._lease = LeasePlace()
        self.holds = None if holds is None else HoldPlace(holds, config, on_held)
        elsewhere = None if self._shared is None else self._shared.active_elsewhere
        self._gate = Gate(config, self._places(), elsewhere)
        new_run = NewRuns(config, clock, node)
        # Told of each change of a run: "run.created" (its row is committed),
        # "run.started" (spawned), "run.ended" (recorded).
        changed = on_change or _nobody
        self.reports = RunReports(self._carried, changed)  # what jobs report, told
        self._lives = Lives(
            records=records,
            config=config,
            gate=self._gate,
            launcher=launcher,
            clock=clock,
            carried=self._carried,
            retries=Retries(records, config, new_run),
            chaining=Chaining(config, new_run),
            changed=changed,
            background=self._background,
        )
        parts: dict[str, Any] = {"config": config, "gate": self._gate, "lives": self._lives}
        self._fires = Fires(records=records, clock=clock, new_run=new_run, changed=changed, **parts)
        self._requests = Requests(
            records=records,
            clock=clock,
            new_run=new_run,
            refuse_if_closing=self._refuse_if_closing,
            **parts,
        )
        self._takeover = Takeover(
            launcher=launcher,
            carried=self._carried,
            changed=changed,
            background=self._background,
            **parts,
        )
        self._node = node

    # -- queries --------------------------------------------------------------------

    @property
    def active_runs(self) -> int:
        """Runs this daemon is carrying: waiting, starting, running or ending."""
        return self._carried.active

    def phases(self) -> Iterator[tuple[str, str]]:
        """(task, "running" or "waiting") of each run carried."""
        return self._carried.phases()

    def counts(self, task_name: str) -> tuple[int, int]:
        """(runs holding a slot, runs waiting in line) for one task."""
        return self._gate.counts(task_name)

    def carried_ids(self) -> list[str]:
        """The ids of the runs this daemon carries."""
        return self._carried.ids()

    def run_view(self, run_id: str) -> RunView | None:
        """Read access to a run this daemon carries (None: it carries no such run)."""
        return self._carried.view(run_id)

    def running_runs(self) -> list[RunRecord]:
        """The carried runs whose processes run (read, never written: see Carried)."""
        return self._carried.running()

    def is_configured(self, task_name: str) -> bool:
        return task_name in self._config.tasks

    # -- the scheduler's port ----------------------------------------------------------

    async def fire(
        self, task_name: str, scheduled_for: datetime, trigger: Trigger = Trigger.SCHEDULE
    ) -> RunRecord | None:
        """A scheduled fire; None when another node or life already claimed it."""
        self._config.task(task_name)
        runs = await self.fire_many([(task_name, scheduled_for, trigger)])
        return runs[0] if runs else None

    async def prepare(self, task_names: Sequence[str]) -> None:
        await self._fires.prepare(task_names)

    async def reserve(
        self, fires: Sequence[tuple[str, datetime, datetime]]
    ) -> dict[str, RunRecord | None]:
        self._refuse_if_closing()
        return await self._fires.reserve(fires)

    async def fire_many(
        self,
        fires: Sequence[tuple[str, datetime, Trigger]],
        reserved: Mapping[tuple[str, datetime], RunRecord | None] | None = None,
    ) -> list[RunRecord]:
        self._refuse_if_closing()
        return await self._fires.fire_many(fires, reserved)

    async def record_missed(
        self, task_name: str, fires: list[datetime], *, more: int, why: str
    ) -> None:
        await self._fires.record_missed(task_name, fires, more=more, why=why)

    async def discard_reserved(self, run_ids: Sequence[str]) -> None:
        """Delete the rows of reservations that will not be used (see RunRecords)."""
        await self._records.discard_reserved(run_ids)

    # -- requests ------------------------------------------------------------------------

    async def trigger(
        self, task_name: str, params: Mapping[str, Any] | None = None, **asked: Unpack[Asked]
    ) -> tuple[AnyRun, bool]:
        """An on-request run (API/CLI): (the run, whether this request created it)."""
        return await self._requests.trigger(task_name, params, **asked)

    async def rerun(self, run_id: str) -> RunRecord:
        return await self._requests.rerun(run_id)

    async def stop(self, run_id: str) -> RunRecord:
        """Ask a run to stop: a live process gets stop_signal; a waiting run ends now.

        Raises Conflict when the run has ended (or is ending), or runs elsewhere.
        """
        handle = self._carried.get(run_id)
        if handle is None:
            run = await self._records.get_run(run_id)
            if run.status == Status.ENDED:
                raise Conflict(f"run {run_id} has already ended ({run.end_reason})")
            raise CarriedElsewhere(
                f"run {run_id} is carried by node {run.node}, not by this node ({self._node})",
                run.node,
            )
        if handle.state in (RunState.QUEUED, RunState.DELAYED):
            await self._lives.cancel(handle, stopped("stopped before it started"))
        elif handle.state in (
            RunState.CLAIMING,
            RunState.PLACING,
            RunState.STARTING,
            RunState.RUNNING,
        ):
            handle.control.stop.set()
            self._gate.mark_stopping(handle.id, handle.task_name)
        else:
            raise Conflict(f"run {run_id} has already ended or is ending")
        return handle.run.copy()

    def fence(self, kill_at: float) -> list[str]:
        """This node's heartbeats have not landed for half its lease: before a survivor
        may take its runs over, the runs of tasks that must not overlap (``overlap``
        other than allow) are stopped (stop_signal, then SIGKILL at ``kill_at``, loop
        time, whatever their kill_grace), and no new one starts until the lease is
        regained.  Their ends are recorded once the database answers, unless a
        survivor ended them first (an ended row is final).  Returns the runs stopped."""
        self._lease.lost()
        loop = asyncio.get_running_loop()
        fenced = []
        for handle in self._carried.handles():
            if handle.task.overlap == "allow" or handle.state not in FENCED_STATES:
                continue
            handle.control.stop.set()
            self._gate.mark_stopping(handle.id, handle.task_name)
            loop.call_at(kill_at, _kill_if_alive, handle)
            fenced.append(handle.id)
        return fenced

    def unfence(self) -> None:
        """A heartbeat landed again: runs that waited for the lease go on."""
        self._lease.regained()

    # -- runs changing hands (start-up recovery, the fleet) -------------------------------

    def resume_pending(self, run: AnyRun) -> None:
        self._takeover.resume_pending(run)

    def adopt(self, run: AnyRun, process: AdoptedProcess) -> None:
        self._takeover.adopt(run, process)

    async def end_orphan(self, run: AnyRun, reason: EndReason, error: str) -> None:
        await self._takeover.end_orphan(run, reason, error)

    def stop_leftover(self, run: AnyRun, process: AdoptedProcess) -> None:
        self._takeover.stop_leftover(run, process)

    async def taken_over(self, crashed: Sequence[AnyRun], pending: Sequence[AnyRun]) -> None:
        await self._takeover.taken_over(crashed, pending)

    def abandon(self, run_ids: Sequence[str]) -> None:
        self._takeover.abandon(run_ids)

    def _places(self) -> list[Place]:
        """The gate's places in order. Locks and pools first: a run waiting for one
        holds no other place meanwhile; on a shared database the lease before all."""
        kinds: list[Place] = [] if self.holds is None else [self.holds]
        kinds.append(self._host)
        if self._shared is not None:
            kinds = [self._lease, *kinds, self._shared]
        return kinds

    def places_changed(self) -> None:
        """Another node said a place of some task may be free: waiting runs look again."""
        if self._shared is not None:
            self._shared.changed()

    def holds_changed(self) -> None:
        """Another node said seats of a lock or pool may be free: waiting runs look again."""
        if self.holds is not None:
            self.holds.changed()

    # -- reload and shutdown --------------------------------------------------------------

    async def reload(self, changes: ConfigChanges) -> None:
        """After the live config was swapped: runs waiting for a removed task end as
        stopped; tasks whose limits rose hand their free slots to waiting runs."""
        for handle in self._carried.handles():
            if handle.task_name in changes.removed and handle.state in (
                RunState.QUEUED,
                RunState.DELAYED,
            ):
                why = f"task {handle.task_name!r} was removed from the config before it started"
                await self._lives.cancel(handle, stopped(why))
        self._lives.start_granted(self._gate.regrant())
        self._host.set_limit(self._config.current.daemon.max_concurrent_runs)

    async def shutdown(self, grace: timedelta) -> None:
        """Refuse new runs, end queued ones, give live ones ``grace``, then stop them.

        A run waiting for its time (a delayed retry) stays pending for the next life.
        """
        self._lives.closing = True
        for handle in self._carried.handles():
            if handle.state is RunState.PLACING:
                handle.control.stop.set()
            elif handle.state is RunState.DELAYED:
                handle.apply(RunEvent.LEFT_FOR_NEXT_LIFE)
                self._carried.pop(handle.id)
            elif handle.state is RunState.QUEUED:
                await self._lives.cancel(handle, stopped(SHUT_DOWN))
        await self._wait_for_live_runs(grace)
        await self._background.drain()

    async def detach(self) -> None:
        """Let go of every run without ending any: the daemon failed to start after
        recovery had adopted runs (a later step failed), and what it knows of them is
        no outcome.  Processes go on running, rows stay as they are (running with their
        pid, pending with their time), nothing is recorded, told or retried: the next
        start adopts or resumes them.  Unlike ``shutdown``, no run is stopped."""
        self._lives.closing = True
        self._lives.detached = True
        for handle in self._carried.handles():
            if handle.timer is not None:
                handle.timer.cancel()
                handle.timer = None
        await self._background.cancel_with(self._carried.live_jobs())
        log.info("dispatch.detached", runs_left=len(self._carried.ids()))
        self._carried.clear()
        self._gate.clear()

    async def _wait_for_live_runs(self, grace: timedelta) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace.total_seconds()
        jobs = self._carried.live_jobs()
        if jobs:
            log.info("shutdown.waiting", runs=len(jobs), grace_s=grace.total_seconds())
        while jobs := self._carried.live_jobs():
            left = deadline - loop.time()
            if left <= 0:
                for handle in self._carried.handles():
                    handle.control.stop.set()
                await asyncio.wait(jobs)
            else:
                await asyncio.wait(jobs, timeout=left)

    def _refuse_if_closing(self) -> None:
        if self._lives.closing:
            raise ShuttingDown()


def _nobody(kind: RunChange, run: RunRecord) -> None:
    """No one listens for run changes."""


# A process may be running (or about to be) in these states.
FENCED_STATES = frozenset(
    {RunState.CLAIMING, RunState.PLACING, RunState.STARTING, RunState.RUNNING}
)


def _kill_if_alive(handle: RunHandle) -> None:
    """The end of a fence's grace: whatever of the run's process group is left goes."""
    pid = handle.run.pid
    if pid and handle.state in (RunState.STARTING, RunState.RUNNING):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
