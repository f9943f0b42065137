"""Timers on the runs in flight, each raising its alert at most once per run:
run.stuck (stuck_after), run.too_long (max_duration) and fire.late (start_grace).

A run is watched from its "run.created" (fire.late) and "run.started" (the other two)
until its "run.ended", which drops its timers.  A timer that comes due looks at the
dispatcher's own record of the run: a run no longer waiting is not late, one no longer
running neither stuck nor too long.

What a restart must not repeat is kept in task_state: the start of the newest run
told too long.  The timers of each task's runs come due in the order the runs started,
so a run re-adopted after a restart that started no later than that one was told
already (it was running when its time came, and the daemon was up to tell the later
one).  A run waiting to start does not outlive a restart (recovery ends it, see
runners/recovery.py), nor is an adopted run started again, so fire.late cannot repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from cronwarden.alerts.rules import AlertEvent, stuck_event
from cronwarden.alerts.timing import late_at, late_event, too_long_at, too_long_event
from cronwarden.config import TaskConfig
from cronwarden.live_config import LiveConfig
from cronwarden.model import Status
from cronwarden.run_record import AnyRun
from cronwarden.support.clock import Cancellable, Clock

Emit = Callable[[AlertEvent], None]
Save = Callable[..., None]  # (task, **task_state values), in the background


class RunWatch:
    def __init__(
        self,
        live: LiveConfig,
        clock: Clock,
        *,
        emit: Emit,
        save: Save,
        run_json: Callable[[AnyRun], dict[str, Any]],
    ) -> None:
        self.live = live
        self.clock = clock
        self._emit = emit
        self._save = save
        self._run_json = run_json
        self._timers: dict[tuple[str, str], Cancellable] = {}  # (run id, event)
        # Per task, the start of the newest run told too long (from task_state).
        self.too_long_start: dict[str, datetime] = {}

    def adopted(self, runs: Iterable[AnyRun]) -> None:
        """Watch the runs a previous life left running, timed from their real start."""
        for run in runs:
            told = self.too_long_start.get(run.task_name)
            self._arm_running(run, too_long=told is None or (run.start_at or told) > told)

    def on_change(self, kind: str, run: AnyRun) -> None:
        if kind == "run.created":
            self._arm_late(run)
        elif kind == "run.started":
            self._started(run)
        elif kind == "run.ended":
            for event in ("fire.late", "run.stuck", "run.too_long"):
                self._cancel(run.id, event)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _started(self, run: AnyRun) -> None:
        late = self._timers.pop((run.id, "fire.late"), None)
        if late is not None:  # not yet told: a loop held up past the grace sees this first
            late.cancel()
            task = self.live.tasks.get(run.task_name)
            due = None if task is None else late_at(run, task)
            if task is not None and due is not None and run.start_at and run.start_at >= due:
                self._emit(late_event(run, self._run_json(run), task, self.clock.now()))
        self._arm_running(run, too_long=True)

    def _arm_late(self, run: AnyRun) -> None:
        if run.scheduled_for is None:  # most runs a burst creates: no task looked up
            return
        task = self.live.tasks.get(run.task_name)
        due = None if task is None else late_at(run, task)
        if task is not None and due is not None and run.status == Status.PENDING:
            self._arm(run, "fire.late", due, lambda: self._check_late(run, task))

    def _check_late(self, run: AnyRun, task: TaskConfig) -> None:
        self._timers.pop((run.id, "fire.late"), None)
        if run.status == Status.PENDING:
            self._emit(late_event(run, self._run_json(run), task, self.clock.now()))

    def _arm_running(self, run: AnyRun, *, too_long: bool) -> None:
        task = self.live.tasks.get(run.task_name)
        if task is None:
            return
        now = self.clock.now()
        stuck = task.stuck_after
        if stuck > timedelta(0):
            when = (run.start_at or now) + stuck
            self._arm(run, "run.stuck", when, lambda: self._check_stuck(run, stuck))
        long_at = too_long_at(run, task.max_duration, now)
        if too_long and long_at is not None:
            limit = task.max_duration
            self._arm(run, "run.too_long", long_at, lambda: self._check_too_long(run, limit))

    def _check_stuck(self, run: AnyRun, limit: timedelta) -> None:
        self._timers.pop((run.id, "run.stuck"), None)
        if run.status == Status.RUNNING:  # the dispatcher's own record of the run
            self._emit(stuck_event(run, self._run_json(run), limit, self.clock.now()))

    def _check_too_long(self, run: AnyRun, limit: timedelta) -> None:
        self._timers.pop((run.id, "run.too_long"), None)
        if run.status != Status.RUNNING:
            return
        started = run.start_at or self.clock.now()
        told = self.too_long_start.get(run.task_name)
        if told is None or started > told:
            self.too_long_start[run.task_name] = started
            self._save(run.task_name, too_long_alerted_start=started)
        self._emit(too_long_event(run, self._run_json(run), limit, self.clock.now()))

    def _arm(self, run: AnyRun, event: str, when: datetime, check: Callable[[], None]) -> None:
        if (run.id, event) not in self._timers:
            self._timers[(run.id, event)] = self.clock.call_at(when, check)

    def _cancel(self, run_id: str, event: str) -> None:
        timer = self._timers.pop((run_id, event), None)
        if timer is not None:
            timer.cancel()
