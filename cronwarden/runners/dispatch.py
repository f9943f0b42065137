"""The one dispatch path: scheduler fires and API triggers both come through here.

A run row is committed (pending) before its process is spawned, then updated when the
process starts and when it ends; the outcome is recorded under ``asyncio.shield`` so a
cancellation (shutdown) cannot lose it.  Overlap, queueing and retries are decided by
the pure functions of ``scheduler.policies``; this module only carries them out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
import uuid6

from cronwarden.clock import Clock
from cronwarden.config import TaskConfig
from cronwarden.errors import (
    Conflict,
    InvalidParams,
    ShuttingDown,
    TaskNotFound,
    TriggerRefused,
)
from cronwarden.model import EndReason, Run, Status, Trigger
from cronwarden.runners.environment import run_environment
from cronwarden.runners.execute import Limits, RunControl, execute, watch_adopted
from cronwarden.runners.identity import resolve_identity
from cronwarden.runners.logs import (
    LogSummary,
    LogWriter,
    append_marker,
    log_path,
    summarize_log,
)
from cronwarden.runners.outcome import Outcome, runs_in_shell
from cronwarden.runners.process import AdoptedProcess, ProcessSpec, StartFailed, proc_stat
from cronwarden.scheduler.policies import Admission, admit, retry_delay, should_retry
from cronwarden.store import Store
from cronwarden.store.resilience import StoreUnavailable, persist
from cronwarden.store.runs import DuplicateFire
from cronwarden.timefmt import iso_z

log = structlog.get_logger("cronwarden.dispatch")


@dataclass
class ActiveRun:
    """A run this daemon is responsible for until it ends."""

    run: Run
    task: TaskConfig
    control: RunControl = field(default_factory=RunControl)
    job: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None  # a delayed retry waiting for not_before
    queued: bool = False


class Dispatcher:
    def __init__(
        self,
        store: Store,
        tasks: Mapping[str, TaskConfig],
        *,
        node: str,
        data_dir: Path,
        clock: Clock,
    ) -> None:
        self.store = store
        self.tasks = dict(tasks)
        self.node = node
        self.data_dir = data_dir
        self.logs_dir = data_dir / "logs"
        self.clock = clock
        self.active: dict[str, ActiveRun] = {}
        self._queues: dict[str, deque[str]] = {}
        self._admission_locks: dict[str, asyncio.Lock] = {}
        self._closing = False

    def update_tasks(self, tasks: Mapping[str, TaskConfig]) -> None:
        """New definitions apply to new runs; running runs keep the one they started with."""
        self.tasks = dict(tasks)

    def task(self, name: str) -> TaskConfig:
        try:
            return self.tasks[name]
        except KeyError:
            raise TaskNotFound(f"no task is named {name!r}") from None

    # -- entry points -------------------------------------------------------------

    async def fire(
        self, task_name: str, scheduled_for: datetime, trigger: Trigger = Trigger.SCHEDULE
    ) -> Run | None:
        """A scheduled fire; returns None when another node or life already claimed it."""
        task = self.task(task_name)
        async with self._admitting(task):
            decision = self._admission(task)
            if decision in (Admission.SKIP, Admission.REFUSE):
                reason = (
                    "another run was still active (overlap = skip)"
                    if decision is Admission.SKIP
                    else f"the queue was full (queue_max = {task.queue_max})"
                )
                run = self._new_run(task, trigger, scheduled_for=scheduled_for)
                run.status, run.end_reason = Status.ENDED, EndReason.SKIPPED
                run.end_at, run.duration_ms, run.error = run.created_at, 0, f"skipped: {reason}"
                return await self._claim(run)
            claimed = await self._claim(self._new_run(task, trigger, scheduled_for=scheduled_for))
            if claimed is not None:
                await self._admit(task, claimed, decision)
            return claimed

    async def trigger(
        self,
        task_name: str,
        params: Mapping[str, str] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Run:
        """An on-request run (API/CLI); refusals raise and record nothing."""
        task = self.task(task_name)
        if not task.api_trigger:
            raise TriggerRefused(f"task {task_name!r} has api_trigger = false")
        checked = check_params(task, params or {})
        async with self._admitting(task):
            decision = self._admission(task)
            if decision is Admission.SKIP:
                raise TriggerRefused(
                    f"task {task_name!r} already has {task.max_concurrent} active "
                    "run(s) and overlap = skip"
                )
            if decision is Admission.REFUSE:
                raise TriggerRefused(
                    f"task {task_name!r} has a full queue (queue_max = {task.queue_max})"
                )
            run = self._new_run(task, Trigger.API, params=checked, idempotency_key=idempotency_key)
            await self.store.insert_run(run)
            await self._admit(task, run, decision)
            return run

    async def stop(self, run_id: str) -> Run:
        """Ask a run to stop: a live process gets stop_signal; a waiting run ends now."""
        current = await self.store.get_run(run_id)
        if current.status == Status.ENDED:
            raise Conflict(f"run {run_id} has already ended ({current.end_reason})")
        active = self.active.get(run_id)
        if active is None:
            raise Conflict(f"run {run_id} is not running on this node ({self.node})")
        if active.job is None:  # queued, or a retry waiting for its time
            await self._end_waiting(
                active, Outcome(EndReason.STOPPED, error="stopped before it started")
            )
        else:
            active.control.stop.set()
        return current

    def adopt(self, run: Run, process: AdoptedProcess) -> None:
        """Take back a run whose process outlived the previous daemon life."""
        task = self.tasks.get(run.task_name) or _removed_task(run.task_name)
        active = ActiveRun(run=run, task=task)
        self.active[run.id] = active
        active.job = asyncio.get_running_loop().create_task(
            self._watch_adopted(active, process), name=f"adopted run {run.id}"
        )
        log.info("run.adopted", task=run.task_name, run_id=run.id, pid=run.pid)

    async def _watch_adopted(self, active: ActiveRun, process: AdoptedProcess) -> None:
        run, task = active.run, active.task
        limits = _limits(task)
        if limits.timeout is not None and run.start_at is not None:
            elapsed = (self.clock.now() - run.start_at).total_seconds()
            limits = replace(limits, timeout=max(0.0, limits.timeout - elapsed))
        outcome = Outcome(EndReason.CRASHED, error="the run was interrupted")
        try:
            outcome = await watch_adopted(
                process, limits, active.control, via_shell=runs_in_shell(task.argv)
            )
        finally:
            summary = self._close_inherited_log(
                run.id, outcome.error or "re-adopted after a daemon restart"
            )
            await asyncio.shield(self._finish(active, outcome, summary))

    async def end_orphan(self, run: Run, reason: EndReason, error: str) -> None:
        """End a run no live process belongs to (left by a previous life); retries apply."""
        task = self.tasks.get(run.task_name)
        summary = self._close_inherited_log(run.id, error)
        outcome = Outcome(reason, error=error)
        if task is None:  # the task is gone from the config: record, never retry
            await self._record_end(run, outcome, summary)
            return
        await self._finish(ActiveRun(run=run, task=task), outcome, summary)

    def _close_inherited_log(self, run_id: str, note: str) -> LogSummary:
        """A log a previous daemon life was writing: say what happened, then measure it."""
        path = log_path(self.logs_dir, run_id)
        if path.exists():
            append_marker(path, note, iso_z(self.clock.now()))
        return summarize_log(path)

    async def shutdown(self, grace: timedelta) -> None:
        """Refuse new runs, give live ones ``grace``, then stop them and record it all."""
        self._closing = True
        for active in list(self.active.values()):
            if active.timer is not None:  # a delayed retry: stays pending for the next life
                active.timer.cancel()
                self.active.pop(active.run.id, None)
            elif active.queued:
                await self._end_waiting(
                    active, Outcome(EndReason.STOPPED, error="the daemon shut down first")
                )
        jobs = [a.job for a in self.active.values() if a.job is not None]
        if jobs:
            log.info("shutdown.waiting", runs=len(jobs), grace_s=grace.total_seconds())
            _, pending = await asyncio.wait(jobs, timeout=grace.total_seconds())
            if pending:
                for active in self.active.values():
                    active.control.stop.set()
                await asyncio.wait(pending)

    # -- admission ------------------------------------------------------------------

    def _admitting(self, task: TaskConfig) -> contextlib.AbstractAsyncContextManager[Any]:
        """Admission and registration of one task's runs happen one at a time when overlap
        is limited: the insert awaits, and two triggers must not both see a free slot."""
        if task.overlap == "allow":
            return contextlib.nullcontext()
        return self._admission_locks.setdefault(task.name, asyncio.Lock())

    def _admission(self, task: TaskConfig) -> Admission:
        if self._closing:
            raise ShuttingDown()
        mine = [a for a in self.active.values() if a.task.name == task.name]
        return admit(
            overlap=task.overlap,
            active=sum(1 for a in mine if a.job is not None),
            queued=sum(1 for a in mine if a.queued),
            max_concurrent=task.max_concurrent,
            queue_max=task.queue_max,
        )

    async def _admit(self, task: TaskConfig, run: Run, decision: Admission) -> None:
        active = ActiveRun(run=run, task=task)
        self.active[run.id] = active
        if decision is Admission.QUEUE:
            active.queued = True
            self._queues.setdefault(task.name, deque()).append(run.id)
            log.info("run.queued", task=task.name, run_id=run.id)
            return
        if decision is Admission.TERMINATE:
            oldest = min(
                (a for a in self.active.values() if a.task.name == task.name and a.job),
                key=lambda a: a.run.created_at,
            )
            log.info("run.terminating", task=task.name, run_id=oldest.run.id, for_run=run.id)
            oldest.control.stop.set()
        self._start(active)

    def _start(self, active: ActiveRun) -> None:
        active.queued = False
        active.timer = None
        active.job = asyncio.get_running_loop().create_task(
            self._execute(active), name=f"run {active.run.id}"
        )

    def _start_next_queued(self, task_name: str) -> None:
        queue = self._queues.get(task_name)
        while queue:
            active = self.active.get(queue.popleft())
            if active is not None and active.queued and not self._closing:
                self._start(active)
                return

    # -- execution ------------------------------------------------------------------

    async def _execute(self, active: ActiveRun) -> None:
        run, task = active.run, active.task
        writer = LogWriter(
            log_path(self.logs_dir, run.id),
            max_size=task.max_log_size,
            mode=task.log_on_full,
            now=self.clock.now,
            on_full=active.control.overflow.set if task.log_on_full == "kill" else None,
        )
        outcome = Outcome(EndReason.CRASHED, error="the run was interrupted")
        try:
            spec = self._process_spec(task, run)
            outcome = await execute(
                spec, _limits(task), writer, active.control, lambda pid: self._started(run, pid)
            )
        except StartFailed as exc:
            outcome = Outcome(EndReason.FAILED, error=str(exc))
        except asyncio.CancelledError:
            outcome = Outcome(EndReason.STOPPED, error="the daemon stopped the run")
            raise
        except Exception as exc:
            log.exception("run.internal_error", task=task.name, run_id=run.id)
            outcome = Outcome(EndReason.CRASHED, error=f"cronwarden failed to run it: {exc!r}")
        finally:
            summary = writer.finish()
            await asyncio.shield(self._finish(active, outcome, summary))

    def _process_spec(self, task: TaskConfig, run: Run) -> ProcessSpec:
        identity = resolve_identity(task.user, task.group)
        env = run_environment(
            task,
            run_id=run.id,
            attempt=run.attempt,
            scheduled_for=run.scheduled_for,
            params=run.params,
            identity=identity.env,
        )
        return ProcessSpec(
            argv=task.argv,
            env=env,
            cwd=task.working_dir or self.data_dir,
            uid=identity.uid,
            gid=identity.gid,
            groups=identity.groups,
            umask=task.umask,
        )

    async def _started(self, run: Run, pid: int) -> None:
        run.status, run.pid, run.start_at = Status.RUNNING, pid, self.clock.now()
        stat = proc_stat(pid)
        run.proc_started = stat.start_ticks if stat else None
        try:
            await self.store.update_run(
                run.id,
                status=run.status,
                pid=pid,
                start_at=run.start_at,
                proc_started=run.proc_started,
            )
        except StoreUnavailable as exc:
            # The process runs on; its end record carries pid and start time as well.
            log.warning("run.start_not_recorded", task=run.task_name, run_id=run.id, error=str(exc))
        log.info(
            "run.started",
            task=run.task_name,
            run_id=run.id,
            pid=pid,
            attempt=run.attempt,
            triggered_by=run.triggered_by,
        )

    async def _finish(self, active: ActiveRun, outcome: Outcome, summary: LogSummary) -> None:
        try:
            await self._record_end(active.run, outcome, summary)
        finally:
            self.active.pop(active.run.id, None)
        self._start_next_queued(active.run.task_name)
        await self._maybe_retry(active.task, active.run)

    async def _record_end(self, run: Run, outcome: Outcome, summary: LogSummary) -> None:
        now = self.clock.now()
        began = run.start_at or run.created_at
        values: dict[str, Any] = {
            "status": Status.ENDED,
            "end_reason": outcome.end_reason,
            "exit_code": outcome.exit_code,
            "signal": outcome.signal,
            "error": outcome.error,
            "end_at": now,
            "duration_ms": max(0, round((now - began).total_seconds() * 1000)),
            "log_size": summary.size,
            "log_truncated": summary.truncated,
            # Repeated here in case the database missed the "started" write.
            "pid": run.pid,
            "start_at": run.start_at,
            "proc_started": run.proc_started,
        }
        for name, value in values.items():
            setattr(run, name, value)
        # What happened has happened: keep trying until the record lands.
        await persist(
            f"recording the end of run {run.id}", lambda: self.store.update_run(run.id, **values)
        )
        log.info(
            "run.ended",
            task=run.task_name,
            run_id=run.id,
            end_reason=run.end_reason,
            exit_code=run.exit_code,
            signal=run.signal,
            duration_ms=run.duration_ms,
            error=run.error,
        )

    async def _end_waiting(self, active: ActiveRun, outcome: Outcome) -> None:
        if active.timer is not None:
            active.timer.cancel()
        active.queued = False
        await self._finish(active, outcome, LogSummary(size=0, truncated=False))

    # -- retries --------------------------------------------------------------------

    async def _maybe_retry(self, task: TaskConfig, run: Run) -> None:
        if (
            self._closing
            or run.end_reason is None
            or not should_retry(
                run.end_reason, attempt=run.attempt, retries=task.retries, retry_on=task.retry_on
            )
        ):
            return
        delay = retry_delay(
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
        if await persist(f"recording retry {retry.id}", lambda: self._claim(retry)) is None:
            return
        log.info(
            "run.retry_scheduled",
            task=task.name,
            run_id=retry.id,
            retry_of=run.id,
            attempt=retry.attempt,
            delay_s=delay.total_seconds(),
        )
        self.schedule_pending(retry, task)

    def schedule_pending(self, run: Run, task: TaskConfig) -> None:
        """Start a pending run at its not_before (now if that has passed)."""
        active = ActiveRun(run=run, task=task)
        self.active[run.id] = active
        wait = 0.0
        if run.not_before is not None:
            wait = max(0.0, (run.not_before - self.clock.now()).total_seconds())
        active.timer = asyncio.get_running_loop().call_later(wait, self._start, active)

    # -- helpers --------------------------------------------------------------------

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
    ) -> Run:
        return Run(
            id=str(uuid6.uuid7()),
            task_name=task.name,
            status=Status.PENDING,
            triggered_by=trigger,
            scheduled_for=scheduled_for,
            created_at=self.clock.now(),
            attempt=attempt,
            retry_of=retry_of,
            params=dict(params or {}),
            idempotency_key=idempotency_key,
            node=self.node,
            task_hash=task.definition_hash,
        )

    async def _claim(self, run: Run) -> Run | None:
        try:
            return await self.store.insert_run(run)
        except DuplicateFire:
            log.info(
                "fire.already_claimed",
                task=run.task_name,
                scheduled_for=run.scheduled_for,
                attempt=run.attempt,
            )
            return None


def check_params(task: TaskConfig, params: Mapping[str, Any]) -> dict[str, str]:
    """Only declared names, only string values: params never reach a shell string."""
    errors = []
    for name, value in params.items():
        if name not in task.params:
            allowed = ", ".join(task.params) or "none (the task declares no params)"
            errors.append({"name": name, "reason": f"not declared by the task; allowed: {allowed}"})
        elif not isinstance(value, str):
            errors.append({"name": name, "reason": "value must be a string"})
        elif "\0" in value:
            errors.append({"name": name, "reason": "value must not contain a NUL character"})
    if errors:
        raise InvalidParams(f"invalid params for task {task.name!r}", errors)
    return dict(params)


def _removed_task(name: str) -> TaskConfig:
    """Stand-in definition for a run whose task left the config: default limits, no retry."""
    return TaskConfig(name=name, command="true")


def _limits(task: TaskConfig) -> Limits:
    return Limits(
        timeout=task.timeout.total_seconds() or None,
        stop_signal=task.stop_signal,
        kill_grace=task.kill_grace.total_seconds(),
        success_exit_codes=task.success_exit_codes,
    )
