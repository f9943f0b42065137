"""What a run's end raises: the failure alert (from the alert_after_failures-th failing
run in a row), run.output, run.too_short, and task.recovered.

Most ends are told at once.  An end that needs the task's recent history (a failure
of a task with alert_after_failures above 1; a success that may end a streak someone
is to be told about) is decided once that history is read, and every later end of
the same task waits for it: a task's alerts keep the order of its ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from cronwarden.alerts.output import output_event
from cronwarden.alerts.rules import AlertEvent, describe_end, end_event, recovered_event
from cronwarden.alerts.streaks import (
    FailureStreak,
    failure_alert_due,
    recovered_from,
    streak_note,
)
from cronwarden.alerts.timing import too_short_event
from cronwarden.config import EventName, TaskConfig, alert_targets
from cronwarden.errors import StoreUnavailable
from cronwarden.live_config import LiveConfig
from cronwarden.model import EndReason
from cronwarden.run_record import AnyRun
from cronwarden.store.runs import Attempt
from cronwarden.support.clock import Clock

log = structlog.get_logger("cronwarden.alerts")

PAGE = 50  # runs read at a time while counting a streak


class History(Protocol):
    async def recent_attempts(
        self, task_name: str, limit: int, before: tuple[datetime, str] | None = None
    ) -> list[Attempt]: ...


class Emit(Protocol):
    def __call__(self, event: AlertEvent, output_of: AnyRun | None = None) -> None: ...


class RunEnds:
    def __init__(
        self,
        live: LiveConfig,
        history: History,
        clock: Clock,
        *,
        emit: Emit,
        run_json: Callable[[AnyRun], dict[str, Any]],
        succeeded: Callable[[AnyRun], str | None],
    ) -> None:
        self.live = live
        self.history = history
        self.clock = clock
        self._emit = emit
        self._run_json = run_json
        self._succeeded = succeeded  # what else a success ends ("being overdue"), if any
        self._deciding: dict[str, asyncio.Task[None]] = {}  # per task, its last end's
        self._failed_here: set[str] = set()  # tasks whose last end here raised a failure

    def ended(self, run: AnyRun) -> None:
        task = self.live.tasks.get(run.task_name)
        failure = end_event(run, task)
        if self._needs_history(run, task, failure) or run.task_name in self._deciding:
            self._in_turn(run.task_name, self._decide(run, task, failure))
        else:
            self._tell(run, task, failure, before=None)

    async def settled(self) -> None:
        """Every end told (at shutdown, and for tests)."""
        while self._deciding:
            await asyncio.gather(*self._deciding.values(), return_exceptions=True)

    def _needs_history(
        self, run: AnyRun, task: TaskConfig | None, failure: EventName | None
    ) -> bool:
        if task is None:
            return False
        if failure is not None:
            return task.alert_after_failures > 1
        if run.end_reason != EndReason.SUCCESS:
            return False
        # A recovery is read from the history when someone is to be told of it, or
        # when this daemon alerted the failure itself (its log says so either way).
        notify = self.live.current.notify
        return run.task_name in self._failed_here or bool(
            alert_targets(notify, task.name, task.notify, "task.recovered")
        )

    def _in_turn(self, task_name: str, decide: Coroutine[Any, Any, None]) -> None:
        before = self._deciding.get(task_name)

        async def turn() -> None:
            if before is not None:
                await asyncio.wait([before])
            try:
                await decide
            except Exception:  # an alert lost to a bug must not stop the task's others
                log.exception("alert.end_not_told", task=task_name)

        job = asyncio.get_running_loop().create_task(turn(), name=f"alerts of {task_name}")
        self._deciding[task_name] = job
        job.add_done_callback(
            lambda _: (
                self._deciding.pop(task_name) if self._deciding.get(task_name) is job else None
            )
        )

    async def _decide(
        self, run: AnyRun, task: TaskConfig | None, failure: EventName | None
    ) -> None:
        cap = task.alert_after_failures if task is not None else 1
        self._tell(run, task, failure, await self._streak_before(run, cap))

    async def _streak_before(self, run: AnyRun, cap: int) -> FailureStreak | None:
        """The failing runs in a row before ``run``, counted up to ``cap``; None when
        the history cannot be read."""
        retried = {run.retry_of} if run.retry_of else set()
        streak = FailureStreak(cap, of=run.id, until=run.end_at, retried=retried)
        position: tuple[datetime, str] | None = None
        try:
            while True:
                page = await self.history.recent_attempts(run.task_name, PAGE, position)
                if streak.read(page) or len(page) < PAGE:
                    return streak
                position = (page[-1].created_at, page[-1].id)
        except StoreUnavailable as exc:
            log.warning("alerts.history_unread", task=run.task_name, error=str(exc))
        except Exception:  # told as if unread: the alert goes out, not lost to a bug
            log.exception("alerts.history_unread", task=run.task_name)
        return None

    def _tell(
        self,
        run: AnyRun,
        task: TaskConfig | None,
        failure: EventName | None,
        before: FailureStreak | None,
    ) -> None:
        """Raise what the end of ``run`` raises; ``before``: the failing runs in a row
        before it (None: not read)."""
        now = self.clock.now()
        after = task.alert_after_failures if task is not None else 1
        if failure is not None:
            self._failure(run, failure, before, after)
        if task is None:
            return
        # A run's JSON (a pydantic dump) only for an event raised: most ends raise none,
        # and 10,000 runs due at one minute each paid two dumps for nothing.
        printed = output_event(run, None, now)
        if printed is not None and alert_targets(
            self.live.current.notify, task.name, task.notify, "run.output"
        ):
            self._emit(replace(printed, run=self._run_json(run)), output_of=run)
        if run.end_reason != EndReason.SUCCESS:
            return
        if task.min_duration > timedelta(0):  # else run.too_short is off
            short = too_short_event(run, self._run_json(run), task.min_duration, now)
            if short is not None:
                self._emit(short, output_of=run)
        self._failed_here.discard(run.task_name)
        overdue = self._succeeded(run)
        what = recovered_from(before, after) or overdue
        if what is not None:
            self._emit(recovered_event(run, self._run_json(run), what, now))

    def _failure(
        self, run: AnyRun, event: EventName, before: FailureStreak | None, after: int
    ) -> None:
        if not failure_alert_due(before, after):
            log.info(
                "alert.withheld",
                alert_event=event,
                task=run.task_name,
                failing_in_a_row=(before.count if before else 0) + 1,
                alert_after_failures=after,
            )
            return
        self._failed_here.add(run.task_name)
        self._emit(
            AlertEvent(
                event=event,
                task=run.task_name,
                at=self.clock.now(),
                message=describe_end(run) + streak_note(before, after),
                run=self._run_json(run),
            ),
            output_of=run,
        )
