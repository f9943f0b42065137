"""The one dispatch path: scheduler fires, API triggers, retries and recovered runs.

Each run the daemon is responsible for has one ``RunHandle`` (its state machine, see
``lifecycle``); each task has one ``TaskSlots`` (admission, see ``admission``).  Every
path that may start a process asks the task's slots first, synchronously, so no path
can bypass max_concurrent or overlap:

* fire / trigger: admission, then the pending row is committed, then the process;
* a timed fire: its pending row committed ahead of its instant (``reserve``), then at
  the instant admission and the process;
* a retry or a recovered pending run: committed first, then admission when its time
  comes (a slot may be busy by then);
* a queued run: handed the slot its predecessor released, once that one's outcome is
  committed.

Stop, timeout, reload-removal and shutdown are events of the same machine, so a run
ends exactly once and frees its slot exactly once.  Records go through ``RunRecords``
(group-committed on SQL); an outcome is recorded under ``asyncio.shield`` so a
cancellation cannot lose it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
import uuid6

from cronwarden.backoff import backoff_delay
from cronwarden.clock import Clock
from cronwarden.config import TaskConfig
from cronwarden.errors import (
    CarriedElsewhere,
    Conflict,
    IdempotencyMismatch,
    InvalidParams,
    ShuttingDown,
    StoreUnavailable,
    TriggerRefused,
)
from cronwarden.hub import RunChange
from cronwarden.live_config import ConfigChanges, LiveConfig
from cronwarden.model import EndReason, Run, Status, Trigger, new_run, update_run
from cronwarden.runlog.model import LogSummary
from cronwarden.runners.admission import Policy, TaskSlots, Verdict
from cronwarden.runners.execute import terminate
from cronwarden.runners.host_limit import HostLimit
from cronwarden.runners.launch import NO_LOG, Ending, Launcher, limits
from cronwarden.runners.lifecycle import RunEvent, RunHandle, RunState
from cronwarden.runners.outcome import Outcome
from cronwarden.runners.process import AdoptedProcess
from cronwarden.scheduler.policies import should_retry
from cronwarden.store.protocol import KeyClaim, KeyedRun, RunRecords, SharedPlaces
from cronwarden.store.resilience import persist
from cronwarden.text import printable

log = structlog.get_logger("cronwarden.dispatch")

IDEMPOTENCY_TTL = timedelta(hours=24)
# Forks per turn of the event loop.  Spawning a thousand runs due at once in a single
# turn would handle no exit and no end of output until the last fork, so pipes and
# pidfds of finished runs pile up, and every fork-exec pays for each fd open in the
# daemon.  A few per turn keeps them reaped as they go.
SPAWNS_PER_TURN = 8
PLACE_POLL = 1.0  # seconds between looks for a place held on other nodes (NOTIFY is sooner)


class Dispatcher:
    def __init__(
        self,
        records: RunRecords,
        config: LiveConfig,
        *,
        node: str,
        launcher: Launcher,
        clock: Clock,
        on_change: Callable[[RunChange, Run], None] | None = None,
        places: SharedPlaces | None = None,
    ) -> None:
        self.records = records
        # Several nodes share the database: a limited task's places are counted there.
        self.places = places
        self._places_changed = asyncio.Event()
        # Told of each change of a run: "run.created" (its row is committed),
        # "run.started" (spawned), "run.ended" (recorded); for /api/events and the end
        # of a followed log.
        self.on_change = on_change
        self.config = config
        self.node = node
        self.launcher = launcher
        self.clock = clock
        self.handles: dict[str, RunHandle] = {}
        self._slots: dict[str, TaskSlots] = {}
        self.host = HostLimit(config.current.daemon.max_concurrent_runs)
        self._key_locks = _KeyedLocks()
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._detached = False  # see detach()
        self._abandoned: set[str] = set()  # see abandon()
        self._spawns_this_turn = 0
        self._spawn_waiters: deque[asyncio.Future[None]] = deque()

    # -- queries ----------------------------------------------------------------

    @property
    def active_runs(self) -> int:
        """Runs this daemon is carrying: waiting, starting, running or ending."""
        return sum(1 for h in self.handles.values() if not h.ended)

    def phases(self) -> Iterator[tuple[str, str]]:
        """(task, "running" or "waiting") of each run carried: waiting is queued, a
        retry's delay, or a place under max_concurrent_runs."""
        for handle in self.handles.values():
            if handle.state is RunState.WAITING or self.host.is_waiting(handle.id):
                yield handle.task_name, "waiting"
            elif handle.state in (RunState.STARTING, RunState.RUNNING, RunState.ENDING):
                yield handle.task_name, "running"

    def counts(self, task_name: str) -> tuple[int, int]:
        """(runs holding a slot, runs waiting in line) for one task."""
        slots = self._slots.get(task_name)
        return (0, 0) if slots is None else (len(slots.holders), len(slots.line))

    # -- entry points -------------------------------------------------------------

    async def fire(
        self, task_name: str, scheduled_for: datetime, trigger: Trigger = Trigger.SCHEDULE
    ) -> Run | None:
        """A scheduled fire; None when another node or life already claimed it."""
        self.config.task(task_name)
        runs = await self.fire_many([(task_name, scheduled_for, trigger)])
        return runs[0] if runs else None

    async def reserve(
        self, fires: Sequence[tuple[str, datetime, datetime]]
    ) -> dict[str, Run | None]:
        """Commit the rows of scheduled fires ahead of their instants (task, nominal
        fire time, instant); per task, the run reserved, or None when another node
        reserved the fire first.  A reserved row is pending with ``not_before`` = the
        instant, and its ``created_at`` is the instant too: that is when the run comes
        into being for whoever reads it.  Admission waits for the instant (fire_many)."""
        self._refuse_if_closing()
        runs: dict[str, Run] = {}
        for task_name, scheduled_for, instant in fires:
            task = self.config.tasks.get(task_name)
            if task is not None:
                runs[task_name] = self._new_run(
                    task, Trigger.SCHEDULE, scheduled_for=scheduled_for, created_at=instant
                )
                update_run(runs[task_name], {"not_before": instant})
        claimed = await self.records.claim(list(runs.values())) if runs else set()
        return {name: run if run.id in claimed else None for name, run in runs.items()}

    async def fire_many(
        self,
        fires: Sequence[tuple[str, datetime, Trigger]],
        reserved: Mapping[tuple[str, datetime], Run | None] | None = None,
    ) -> list[Run]:
        """Fires due together: each goes through admission, then all are claimed in one
        write; returns the runs this node claimed (a fire another node or an earlier
        life claimed is left out).  A fire refused by overlap is recorded as an
        ended/skipped run.  Fires of tasks no longer configured are dropped.

        ``reserved``: fires whose rows ``reserve`` committed already (None: another
        node's); those need no write before they start."""
        self._refuse_if_closing()
        reserved = reserved or {}
        admitted: list[RunHandle] = []
        rows: list[Run] = []  # to insert
        ours: list[Run] = []  # reserved by this node
        changes: dict[str, dict[str, Any]] = {}  # to reserved rows
        elsewhere = await self._active_elsewhere([name for name, _, _ in fires])
        gone: list[str] = []  # reserved rows of tasks no longer configured
        for task_name, scheduled_for, trigger in fires:
            task = self.config.tasks.get(task_name)
            is_reserved = (task_name, scheduled_for) in reserved
            if is_reserved:
                reserved_run = reserved[(task_name, scheduled_for)]
                if reserved_run is None:
                    _log_already_claimed(task_name, scheduled_for, 1)
                    continue
                if task is None:
                    gone.append(reserved_run.id)
                    continue
                run = reserved_run
                ours.append(run)
                changes[run.id] = _brought_up_to_date(run, self.config.task_hash(task), trigger)
            elif task is None:
                continue
            else:
                run = self._new_run(task, trigger, scheduled_for=scheduled_for)
                rows.append(run)
            handle = RunHandle(run, task)
            verdict = self._slots_of(handle).acquire(
                run.id, self._policy(task_name), elsewhere.get(task_name, 0)
            )
            if verdict in (Verdict.SKIP, Verdict.REFUSE):
                self._forget_idle(task_name)
                skipped = _skipped(task, verdict, elsewhere.get(task_name, 0))
                if is_reserved:
                    ended = _set_ended(run, skipped, now=self.clock.now())
                    changes.setdefault(run.id, {}).update(ended)
                else:
                    _set_ended(run, skipped)
            else:
                self.handles[run.id] = handle
                admitted.append(handle)
        try:
            claimed = {run.id for run in ours}
            if rows:
                claimed |= await self.records.claim(rows)
            # One commit for all of them (the recorder groups what is queued together).
            await asyncio.gather(
                *(self.records.record(i, v) for i, v in changes.items() if v),
                *([self.records.discard_reserved(gone)] if gone else []),
            )
        except BaseException:
            for handle in admitted:
                self._lose(handle)
            raise
        for handle in admitted:
            if handle.id in claimed:
                self._proceed(handle)
            else:
                self._lose(handle)
        for run in rows + ours:
            if run.id not in claimed:
                _log_already_claimed(run.task_name, run.scheduled_for, run.attempt)
            elif run.status == Status.ENDED:  # skipped by overlap
                log.info("run.skipped", task=run.task_name, run_id=run.id, reason=run.error)
                self._created_ended(run)
        return [run for run in rows + ours if run.id in claimed]

    async def trigger(
        self,
        task_name: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> tuple[Run, bool]:
        """An on-request run (API/CLI): (the run, whether this request created it).

        Refusals raise and record nothing.  With an Idempotency-Key, a repeat within
        24 h gets the run the first request made, even while requests race; the same
        key with other params raises IdempotencyMismatch.
        """
        task = self.config.task(task_name)
        if not task.api_trigger:
            raise TriggerRefused(f"task {task_name!r} has api_trigger = false")
        checked = check_params(task, params or {})
        self._refuse_if_closing()
        if idempotency_key is None:
            run = self._new_run(task, Trigger.API, params=checked)
            await self._admit_request(task, run, self._claim_plain(run))
            return run, True
        fingerprint = _fingerprint(checked)
        async with self._key_locks.hold((task.name, idempotency_key)):
            since = self.clock.now() - IDEMPOTENCY_TTL
            earlier = await self.records.find_key(task.name, idempotency_key, since)
            if earlier is not None:
                return _same_request(earlier, fingerprint, idempotency_key), False
            run = self._new_run(task, Trigger.API, params=checked, idempotency_key=idempotency_key)
            claim = KeyClaim(task.name, idempotency_key, fingerprint, run.created_at, since)
            if await self._admit_request(task, run, self._claim_keyed(run, claim)):
                return run, True
            earlier = await self.records.find_key(task.name, idempotency_key, since)
            if earlier is None:  # the other request's key expired meanwhile: rare, say so
                raise Conflict("the Idempotency-Key changed hands during the request; retry")
            return _same_request(earlier, fingerprint, idempotency_key), False

    async def rerun(self, run_id: str) -> Run:
        """A new run of the same task with the same params, as an API trigger would
        start it (api_trigger, params and admission are checked against the task as
        configured now); it records which run it repeats."""
        earlier = await self.records.get_run(run_id)
        task = self.config.task(earlier.task_name)
        if not task.api_trigger:
            raise TriggerRefused(f"task {task.name!r} has api_trigger = false")
        checked = check_params(task, earlier.params)
        self._refuse_if_closing()
        run = self._new_run(task, Trigger.API, params=checked, rerun_of=earlier.id)
        await self._admit_request(task, run, self._claim_plain(run))
        return run

    async def stop(self, run_id: str) -> Run:
        """Ask a run to stop: a live process gets stop_signal; a waiting run ends now.

        Raises Conflict when the run has ended (or is ending), or runs elsewhere.
        """
        handle = self.handles.get(run_id)
        if handle is None:
            run = await self.records.get_run(run_id)
            if run.status == Status.ENDED:
                raise Conflict(f"run {run_id} has already ended ({run.end_reason})")
            raise CarriedElsewhere(
                f"run {run_id} is carried by node {run.node}, not by this node ({self.node})",
                run.node,
            )
        if handle.state is RunState.WAITING:
            await self._cancel(handle, _stopped("stopped before it started"))
        elif handle.state in (RunState.CLAIMING, RunState.STARTING, RunState.RUNNING):
            handle.control.stop.set()
            self._slots_of(handle).mark_stopping(handle.id)
        else:
            raise Conflict(f"run {run_id} has already ended or is ending")
        return handle.run.model_copy()

    async def record_missed(
        self, task_name: str, fires: list[datetime], *, more: int, why: str
    ) -> None:
        """Record fires that did not run as ended runs with end_reason ``missed``; the
        newest one says how many older ones of the same gap are not listed."""
        task = self.config.task(task_name)
        runs = []
        for i, fire in enumerate(fires):
            run = self._new_run(task, Trigger.SCHEDULE, scheduled_for=fire)
            error = f"missed: {why}"
            if more and i == len(fires) - 1:
                error += f"; {more} earlier fire{'s' if more != 1 else ''} of this gap "
                error += "were missed too and are not listed"
            _set_ended(run, Outcome(EndReason.MISSED, error=error))
            runs.append(run)
        if runs:
            claimed = await persist(
                f"recording missed fires of {task_name}", lambda: self.records.claim(runs)
            )
            for run in runs:
                if run.id in claimed:
                    self._created_ended(run)

    def resume_pending(self, run: Run) -> None:
        """A pending run a previous life left waiting for its time (a delayed retry):
        it waits again, then goes through admission like any other start."""
        task = self.config.tasks.get(run.task_name)
        if task is None:
            raise ValueError(f"resume_pending needs a configured task, not {run.task_name!r}")
        handle = RunHandle(run, task)
        self.handles[run.id] = handle
        self._wait_for_time(handle)

    def adopt(self, run: Run, process: AdoptedProcess) -> None:
        """Take back a run whose process outlived the previous daemon life."""
        handle = self._seated(run)
        handle.apply(RunEvent.SPAWNED)
        handle.job = asyncio.get_running_loop().create_task(
            self._watch(handle, process), name=f"adopted run {run.id}"
        )
        log.info("run.adopted", task=run.task_name, run_id=run.id, pid=run.pid)

    async def end_orphan(self, run: Run, reason: EndReason, error: str) -> None:
        """End a run no live process belongs to (left by a previous life); retries apply."""
        handle = self._seated(run)
        summary = self.launcher.close_inherited_log(run.id, error)
        await self._end(handle, RunEvent.EXITED, Ending(Outcome(reason, error=error), summary))

    def stop_leftover(self, run: Run, process: AdoptedProcess) -> None:
        """A process of a run that a survivor ended while this node was down: stopped
        as a timeout would stop it, recording nothing (the row is the survivor's)."""
        task = self.config.tasks.get(run.task_name) or _removed_task(run.task_name)
        log.warning(
            "run.leftover_stopped",
            task=run.task_name,
            run_id=run.id,
            pid=run.pid,
            why="another node took this run over while this node was down",
        )
        self._background_task(terminate(process, process.exited, limits(task)))

    async def taken_over(self, crashed: Sequence[Run], pending: Sequence[Run]) -> None:
        """Runs of a node declared dead, taken over here: those it ran were ended as
        crashed in the takeover itself (their retries run here, by policy); its waiting
        retries wait here for their time."""
        for run in crashed:
            self._changed("run.ended", run)
            _log_end(run, log.warning)
            await self._maybe_retry(run)
        for run in pending:
            if run.task_name in self.config.tasks and run.id not in self.handles:
                self.resume_pending(run)

    def abandon(self, run_ids: Sequence[str]) -> None:
        """Runs a survivor ended while this node was cut off (it took them over): their
        processes are stopped, and their end is neither recorded nor retried here."""
        for run_id in run_ids:
            handle = self.handles.get(run_id)
            if handle is None:
                continue
            self._abandoned.add(run_id)
            if handle.state is RunState.WAITING:
                self._background_task(self._cancel(handle, _stopped("taken over")))
            else:
                handle.control.stop.set()
            log.warning("run.abandoned", task=handle.task_name, run_id=run_id)

    async def reload(self, changes: ConfigChanges) -> None:
        """After the live config was swapped: runs waiting for a removed task end as
        stopped; tasks whose limits rose hand their free slots to waiting runs."""
        for handle in list(self.handles.values()):
            if handle.task_name in changes.removed and handle.state is RunState.WAITING:
                why = f"task {handle.task_name!r} was removed from the config before it started"
                await self._cancel(handle, Outcome(EndReason.STOPPED, error=why))
        for name, slots in list(self._slots.items()):
            if name in self.config.tasks:
                self._start_granted(slots.grant(self._policy(name)))
        self.host.set_limit(self.config.current.daemon.max_concurrent_runs)

    async def shutdown(self, grace: timedelta) -> None:
        """Refuse new runs, end queued ones, give live ones ``grace``, then stop them.

        A run waiting for its time (a delayed retry) stays pending for the next life.
        """
        self._closing = True
        for handle in list(self.handles.values()):
            if self.host.is_waiting(handle.id):
                handle.control.stop.set()  # waiting for a place under max_concurrent_runs
            if handle.state is not RunState.WAITING:
                continue
            if handle.timer is not None:
                handle.apply(RunEvent.LEFT_FOR_NEXT_LIFE)
                self.handles.pop(handle.id, None)
            else:
                why = "the daemon shut down before it started"
                await self._cancel(handle, Outcome(EndReason.STOPPED, error=why))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace.total_seconds()
        jobs = self._live_jobs()
        if jobs:
            log.info("shutdown.waiting", runs=len(jobs), grace_s=grace.total_seconds())
        while jobs := self._live_jobs():
            left = deadline - loop.time()
            if left <= 0:
                for handle in self.handles.values():
                    handle.control.stop.set()
                await asyncio.wait(jobs)
            else:
                await asyncio.wait(jobs, timeout=left)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def detach(self) -> None:
        """Let go of every run without ending any: the daemon failed to start after
        recovery had adopted runs (a later step failed), and what it knows of them is
        no outcome.  Processes go on running, rows stay as they are (running with their
        pid, pending with their time), nothing is recorded, told or retried: the next
        start adopts or resumes them.  Unlike ``shutdown``, no run is stopped."""
        self._closing = True
        self._detached = True
        for handle in self.handles.values():
            if handle.timer is not None:
                handle.timer.cancel()
                handle.timer = None
        unfinished = [*self._live_jobs(), *self._background]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        log.info("dispatch.detached", runs_left=len(self.handles))
        self.handles.clear()
        self._slots.clear()

    # -- admission ----------------------------------------------------------------

    async def _admit_request(
        self, task: TaskConfig, run: Run, claim: Callable[[], Awaitable[bool]]
    ) -> bool:
        """Admission of an API trigger, then its durable claim.  A refusal raises (409)
        and records nothing; False when the claim was not ours (the key was taken)."""
        elsewhere = await self._active_elsewhere([task.name])
        handle = RunHandle(run, task)
        verdict = self._slots_of(handle).acquire(
            run.id, self._policy(task.name), elsewhere.get(task.name, 0)
        )
        if verdict in (Verdict.SKIP, Verdict.REFUSE):
            self._forget_idle(task.name)
            raise TriggerRefused(_refusal(task, verdict, elsewhere.get(task.name, 0)))
        self.handles[run.id] = handle
        try:
            committed = await claim()
        except BaseException:
            self._lose(handle)
            raise
        if not committed:
            self._lose(handle)
            return False
        self._proceed(handle)
        return True

    async def _active_elsewhere(self, task_names: Sequence[str]) -> dict[str, int]:
        """On a shared database, the runs other nodes hold of the tasks whose overlap
        is skip (one query for a batch of fires; none when no such task is due)."""
        if self.places is None:
            return {}
        tasks = self.config.tasks
        skipping = {n for n in task_names if n in tasks and tasks[n].overlap == "skip"}
        return await self.places.active_elsewhere(self.node, skipping) if skipping else {}

    def places_changed(self) -> None:
        """Another node said a place of some task may be free: waiting runs look again."""
        self._places_changed.set()
        self._places_changed = asyncio.Event()

    async def _shared_place(self, handle: RunHandle) -> Outcome | None:
        """On a shared database, a limited task's run also needs a place among the
        task's max_concurrent across every node (this node's own count was checked at
        admission).  None: it holds one; else how the run ends without starting."""
        task = handle.task
        if self.places is None or task.overlap == "allow":
            return None
        waiting = False
        while True:
            try:
                if await self.places.take(task.name, handle.id, task.max_concurrent):
                    handle.holds_shared_place = True
                    return None
                if task.overlap == "skip":
                    return _skipped(task, Verdict.SKIP, elsewhere=task.max_concurrent)
                if task.overlap == "terminate":
                    asked = await self.places.ask_oldest_to_stop(task.name)
                    if asked is not None:
                        log.info("run.terminating", task=task.name, run_id=asked, for_run=handle.id)
            except StoreUnavailable as exc:
                log.warning("run.place_unknown", task=task.name, run_id=handle.id, error=str(exc))
            if not waiting:
                log.info("run.waiting_for_other_nodes", task=task.name, run_id=handle.id)
                waiting = True
            changed = asyncio.ensure_future(self._places_changed.wait())
            try:
                if await self._stopped_while(handle, changed, PLACE_POLL):
                    return self._stopped_waiting("a place held on other nodes")
            finally:
                changed.cancel()

    def _claim_plain(self, run: Run) -> Callable[[], Awaitable[bool]]:
        async def claim() -> bool:
            return run.id in await self.records.claim([run])

        return claim

    def _claim_keyed(self, run: Run, key: KeyClaim) -> Callable[[], Awaitable[bool]]:
        async def claim() -> bool:
            return await self.records.claim_keyed(run, key) == run.id

        return claim

    def _changed(self, kind: RunChange, run: Run) -> None:
        if self.on_change is not None:
            self.on_change(kind, run)

    def _created_ended(self, run: Run) -> None:
        """A run recorded already ended (skipped, missed): both of its changes at once."""
        self._changed("run.created", run)
        self._changed("run.ended", run)

    def _proceed(self, handle: RunHandle) -> None:
        """The claim is durable: start if the run holds a slot, else it waits in line."""
        self._changed("run.created", handle.run)
        holds = handle.id in self._slots_of(handle).holders
        handle.apply(RunEvent.CLAIMED_TO_START if holds else RunEvent.CLAIMED_TO_WAIT)
        if self._closing:
            why = "the daemon shut down before it started"
            if holds:
                self._background_task(self._end(handle, RunEvent.EXITED, Ending(_stopped(why))))
            else:
                self._background_task(self._cancel(handle, _stopped(why)))
            return
        if holds:
            self._launch(handle)
            return
        if handle.control.stop.is_set():  # stopped while its row was being committed
            self._background_task(self._cancel(handle, _stopped("stopped before it started")))
            return
        self._wait_in_line(handle)

    def _wait_in_line(self, handle: RunHandle) -> None:
        log.info("run.queued", task=handle.task_name, run_id=handle.id)
        if handle.task.overlap == "terminate":
            self._evict_for(handle)

    def _admit_waiting(self, handle: RunHandle) -> None:
        """A waiting run's time came (retry delay, recovered pending run)."""
        handle.timer = None
        if handle.state is not RunState.WAITING or self._closing:
            return
        if handle.task_name not in self.config.tasks:
            why = f"task {handle.task_name!r} is no longer in the config"
            self._background_task(self._cancel(handle, _stopped(why)))
            return
        verdict = self._slots_of(handle).acquire(handle.id, self._policy(handle.task_name))
        if verdict is Verdict.START:
            handle.apply(RunEvent.SLOT_GRANTED)
            self._launch(handle)
        elif verdict is Verdict.QUEUE:
            self._wait_in_line(handle)
        else:
            self._background_task(self._cancel(handle, _skipped(handle.task, verdict)))

    def _evict_for(self, handle: RunHandle) -> None:
        eviction = self._slots_of(handle).evict_for(handle.id)
        for run_id in eviction.stop:
            log.info("run.terminating", task=handle.task_name, run_id=run_id, for_run=handle.id)
            self.handles[run_id].control.stop.set()
        for run_id in eviction.supersede:
            why = f"replaced by the newer run {handle.id} (overlap = terminate)"
            self._background_task(self._cancel(self.handles[run_id], _stopped(why)))

    def _release(self, handle: RunHandle) -> None:
        """Give back the run's slot (or place in line) and start whoever it goes to."""
        self.handles.pop(handle.id, None)
        self.host.release(handle.id)
        slots = self._slots.get(handle.task_name)
        if slots is None:
            return
        self._start_granted(slots.release(handle.id, self._policy(handle.task_name, handle.task)))
        self._forget_idle(handle.task_name)

    def _start_granted(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            granted = self.handles[run_id]
            if granted.state is RunState.WAITING:  # a CLAIMING one starts once committed
                granted.apply(RunEvent.SLOT_GRANTED)
                self._launch(granted)

    def _lose(self, handle: RunHandle) -> None:
        handle.apply(RunEvent.CLAIM_LOST)
        self._release(handle)

    def _policy(self, task_name: str, fallback: TaskConfig | None = None) -> Policy:
        task = self.config.tasks.get(task_name, fallback)
        if task is None:
            return Policy("allow", 1, 0)
        return Policy(task.overlap, task.max_concurrent, task.queue_max)

    def _slots_of(self, handle: RunHandle) -> TaskSlots:
        return self._slots.setdefault(handle.task_name, TaskSlots())

    def _forget_idle(self, task_name: str) -> None:
        slots = self._slots.get(task_name)
        if slots is not None and slots.idle:
            del self._slots[task_name]

    def _seated(self, run: Run) -> RunHandle:
        """A handle for a run a previous life started: it holds a slot already."""
        task = self.config.tasks.get(run.task_name) or _removed_task(run.task_name)
        handle = RunHandle(run, task)
        self.handles[run.id] = handle
        self._slots_of(handle).holders[run.id] = False
        handle.apply(RunEvent.CLAIMED_TO_START)
        return handle

    def _wait_for_time(self, handle: RunHandle) -> None:
        handle.apply(RunEvent.CLAIMED_TO_WAIT)
        when = handle.run.not_before or self.clock.now()
        handle.timer = self.clock.call_at(when, lambda: self._admit_waiting(handle))

    # -- execution ----------------------------------------------------------------

    def _launch(self, handle: RunHandle) -> None:
        handle.job = asyncio.get_running_loop().create_task(
            self._carry(handle), name=f"run {handle.id}"
        )

    async def _spawn_turn(self) -> None:
        """Wait for a turn of the loop with a fork to spare (see SPAWNS_PER_TURN);
        waiting runs are let through in the order they came, without polling."""
        if self._spawns_this_turn < SPAWNS_PER_TURN and not self._spawn_waiters:
            self._take_spawn()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._spawn_waiters.append(waiter)
        await waiter

    def _take_spawn(self) -> None:
        if self._spawns_this_turn == 0:
            asyncio.get_running_loop().call_soon(self._new_turn)
        self._spawns_this_turn += 1

    def _new_turn(self) -> None:
        self._spawns_this_turn = 0
        while self._spawn_waiters and self._spawns_this_turn < SPAWNS_PER_TURN:
            waiter = self._spawn_waiters.popleft()
            if not waiter.done():  # a cancelled waiter gives its place away
                self._take_spawn()
                waiter.set_result(None)

    async def _carry(self, handle: RunHandle) -> None:
        ending = Ending(Outcome(EndReason.CRASHED, error="the run was interrupted"))
        try:
            if not await self._host_place(handle):
                ending = Ending(self._stopped_waiting("a place under max_concurrent_runs"))
                return
            refused = await self._shared_place(handle)
            if refused is not None:
                ending = Ending(refused)
                return
            await self._spawn_turn()
            ending = await self.launcher.run(
                handle.run, handle.task, handle.control, partial(self._started, handle)
            )
        except asyncio.CancelledError:
            ending = Ending(_stopped("the daemon stopped the run"))
            raise
        except Exception as exc:
            log.exception("run.internal_error", task=handle.task_name, run_id=handle.id)
            ending = Ending(
                Outcome(EndReason.CRASHED, error=f"cronwarden failed to run it: {exc!r}")
            )
        finally:
            await asyncio.shield(self._end(handle, RunEvent.EXITED, ending))

    async def _host_place(self, handle: RunHandle) -> bool:
        """Wait for a place under max_concurrent_runs; False if the run was stopped
        meanwhile (it then gives up its place in line)."""
        waiter = self.host.take(handle.task_name, handle.id)
        if waiter is None:
            return True
        log.info("run.waiting_for_host", task=handle.task_name, run_id=handle.id)
        if await self._stopped_while(handle, waiter):
            self.host.release(handle.id)
            return False
        return True

    async def _stopped_while(
        self, handle: RunHandle, waiter: asyncio.Future[Any], at_most: float | None = None
    ) -> bool:
        """Wait for ``waiter`` (at most ``at_most`` seconds) unless the run is stopped
        first; True if it was.  The waiter is the caller's to settle."""
        stopped = asyncio.ensure_future(handle.control.stop.wait())
        try:
            await asyncio.wait(
                {waiter, stopped}, timeout=at_most, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
        return handle.control.stop.is_set()

    def _stopped_waiting(self, for_what: str) -> Outcome:
        """How a run stopped before it started ends (a shutdown is one such stop)."""
        if self._closing:
            return _stopped("the daemon shut down before it started")
        return _stopped(f"stopped while waiting for {for_what}")

    async def _watch(self, handle: RunHandle, process: AdoptedProcess) -> None:
        self.host.occupy(handle.id)
        ending = Ending(Outcome(EndReason.CRASHED, error="the run was interrupted"))
        try:
            ending = await self.launcher.watch(handle.run, handle.task, handle.control, process)
        finally:
            await asyncio.shield(self._end(handle, RunEvent.EXITED, ending))

    def _started(self, handle: RunHandle, pid: int, start_ticks: Callable[[], int | None]) -> None:
        handle.apply(RunEvent.SPAWNED)
        run = handle.run
        update_run(run, {"status": Status.RUNNING, "pid": pid, "start_at": self.clock.now()})
        self._background_task(self._record_started(run, start_ticks))
        # Told at the spawn, not once the write lands: a short run may end first.
        self._changed("run.started", run)
        log.info(
            "run.started",
            task=run.task_name,
            run_id=run.id,
            pid=pid,
            attempt=run.attempt,
            triggered_by=run.triggered_by,
        )

    async def _record_started(self, run: Run, start_ticks: Callable[[], int | None]) -> None:
        """Record pid and start time, and the process start time that lets a restarted
        daemon recognise the pid as this run's.  Read here rather than at the spawn:
        /proc of a process still in exec is slow to read, and a spawn burst waits."""
        if run.proc_started is None:
            update_run(run, {"proc_started": start_ticks()})
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

    async def _cancel(self, handle: RunHandle, outcome: Outcome) -> None:
        """End a run that never started (stopped, removed, refused, shut down)."""
        await self._end(handle, RunEvent.CANCELLED, Ending(outcome))

    async def _end(self, handle: RunHandle, event: RunEvent, ending: Ending) -> None:
        """Record the outcome (until it lands), then free the slot, then retry."""
        if self._detached:  # the next daemon life adopts the run; nothing is known here
            return
        handle.apply(event)  # synchronously: a second stop now finds the run ENDING
        run = handle.run
        if run.id in self._abandoned:  # its record belongs to the survivor that ended it
            self._abandoned.discard(run.id)
            handle.apply(RunEvent.RECORDED)
            self._release(handle)
            return
        end = self.clock.now()
        if ending.exited_ago is not None:  # the kernel's time of the exit, not when seen
            end = max(run.start_at or end, end - timedelta(seconds=ending.exited_ago))
        values = _set_ended(run, ending.outcome, ending.log, now=end)
        try:
            await persist(
                f"recording the end of run {run.id}", lambda: self.records.record(run.id, values)
            )
        except Exception:
            log.exception("run.end_not_recorded", task=run.task_name, run_id=run.id)
            handle.apply(RunEvent.RECORD_FAILED)
        else:
            handle.apply(RunEvent.RECORDED)
            self._changed("run.ended", run)
        self._release(handle)
        if handle.holds_shared_place and self.places is not None:
            await self.places.announce_freed(run.task_name)
        _log_end(run, log.info)
        await self._maybe_retry(run)

    async def _maybe_retry(self, run: Run) -> None:
        task = self.config.tasks.get(run.task_name)
        if (
            self._closing
            or task is None
            or run.end_reason is None
            or not should_retry(
                run.end_reason, attempt=run.attempt, retries=task.retries, retry_on=task.retry_on
            )
        ):
            return
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
        )
        retry.not_before = retry.created_at + delay
        committed = await persist(
            f"recording retry {retry.id}", lambda: self.records.claim([retry])
        )
        if retry.id not in committed:
            return
        log.info(
            "run.retry_scheduled",
            task=task.name,
            run_id=retry.id,
            retry_of=run.id,
            attempt=retry.attempt,
            delay_s=delay.total_seconds(),
        )
        handle = RunHandle(retry, task)
        self.handles[retry.id] = handle
        self._wait_for_time(handle)

    # -- helpers ------------------------------------------------------------------

    def _refuse_if_closing(self) -> None:
        if self._closing:
            raise ShuttingDown()

    def _live_jobs(self) -> list[asyncio.Task[None]]:
        return [h.job for h in self.handles.values() if h.job is not None and not h.job.done()]

    def _background_task(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dispatch.background_failed", error=repr(task.exception()))

    def _new_run(
        self,
        task: TaskConfig,
        trigger: Trigger,
        *,
        scheduled_for: datetime | None = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        attempt: int = 1,
        retry_of: str | None = None,
        rerun_of: str | None = None,
        created_at: datetime | None = None,
    ) -> Run:
        return new_run(
            id=str(uuid6.uuid7()),
            task_name=task.name,
            status=Status.PENDING,
            triggered_by=trigger,
            scheduled_for=scheduled_for,
            created_at=created_at or self.clock.now(),
            attempt=attempt,
            retry_of=retry_of,
            rerun_of=rerun_of,
            params=dict(params or {}),
            idempotency_key=idempotency_key,
            node=self.node,
            task_hash=self.config.task_hash(task),
        )


class _KeyedLocks:
    """One asyncio.Lock per key while anyone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def check_params(task: TaskConfig, params: Mapping[str, Any]) -> dict[str, str]:
    """Only declared names, only string values: params never reach a shell string."""
    errors = []
    for name, value in params.items():
        shown = printable(name)
        if name not in task.params:
            allowed = ", ".join(task.params) or "none (the task declares no params)"
            errors.append(
                {"name": shown, "reason": f"not declared by the task; allowed: {allowed}"}
            )
        elif not isinstance(value, str):
            errors.append({"name": shown, "reason": "value must be a string"})
        elif "\0" in value:
            errors.append({"name": shown, "reason": "value must not contain a NUL character"})
        elif printable(value) != value:
            errors.append(
                {"name": shown, "reason": "value must be Unicode text (it has a lone surrogate)"}
            )
    if errors:
        raise InvalidParams(f"invalid params for task {task.name!r}", errors)
    return dict(params)


def _brought_up_to_date(run: Run, task_hash: str, trigger: Trigger) -> dict[str, Any]:
    """What changed for a reserved run by its instant: the task was reloaded, or the
    wake came too late for a plain fire (a catch-up run)."""
    values = {"task_hash": task_hash, "triggered_by": trigger}
    changed = {name: value for name, value in values.items() if getattr(run, name) != value}
    update_run(run, changed)
    return changed


def _log_already_claimed(task_name: str, scheduled_for: datetime | None, attempt: int) -> None:
    log.info("fire.already_claimed", task=task_name, scheduled_for=scheduled_for, attempt=attempt)


def _set_ended(
    run: Run, outcome: Outcome, summary: LogSummary = NO_LOG, *, now: datetime | None = None
) -> dict[str, Any]:
    """Fill in a run's end; returns the fields to record (pid and start_at repeated in
    case the "started" write was lost)."""
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
    }
    update_run(run, values)
    return values


def _refusal(task: TaskConfig, verdict: Verdict, elsewhere: int = 0) -> str:
    if verdict is Verdict.SKIP:
        on_others = f", {elsewhere} of them on other nodes" if elsewhere else ""
        return (
            f"task {task.name!r} already has {task.max_concurrent} active "
            f"run{'s' if task.max_concurrent != 1 else ''}{on_others} (overlap = skip)"
        )
    return f"task {task.name!r} has a full queue (queue_max = {task.queue_max})"


def _skipped(task: TaskConfig, verdict: Verdict, elsewhere: int = 0) -> Outcome:
    return Outcome(EndReason.SKIPPED, error=f"skipped: {_refusal(task, verdict, elsewhere)}")


def _log_end(run: Run, level: Callable[..., Any]) -> None:
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


def _stopped(why: str) -> Outcome:
    return Outcome(EndReason.STOPPED, error=why)


def _fingerprint(params: Mapping[str, str]) -> str:
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _same_request(earlier: KeyedRun, fingerprint: str, key: str) -> Run:
    """The earlier run, if the repeat asks for the same thing ("" = unknown: accept)."""
    if earlier.fingerprint and earlier.fingerprint != fingerprint:
        raise IdempotencyMismatch(
            f"Idempotency-Key {key!r} was already used for task {earlier.run.task_name!r} "
            f"with other params (run {earlier.run.id}); use a new key for a new request"
        )
    return earlier.run


def _removed_task(name: str) -> TaskConfig:
    """Stand-in definition for a run whose task left the config: default limits, no retry."""
    return TaskConfig(name=name, command="true")
