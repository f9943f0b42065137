"""Alerts: run changes and timers in, deliveries to ``[notify.*]`` targets out.

A task's ``notify`` names the targets its alerts go to; a target's ``events`` says
which it takes.  Everything here runs beside the dispatcher, never in its way: an
alert is put on its target's queue and the run goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from cronwarden.alerts.apprise_sender import AppriseSender
from cronwarden.alerts.courier import Courier, Outcome, Send
from cronwarden.alerts.output import CARRIES_OUTPUT, EXCERPT_BYTES, cut_excerpt, output_event
from cronwarden.alerts.overdue import OverdueWatch
from cronwarden.alerts.rules import (
    FAILING,
    AlertEvent,
    describe_end,
    end_event,
    missed_event,
    overdue_event,
    recovered_event,
    stuck_event,
)
from cronwarden.alerts.senders import command_env, send_command, send_webhook
from cronwarden.config import NotifyConfig
from cronwarden.errors import StoreUnavailable
from cronwarden.live_config import LiveConfig
from cronwarden.model import EndReason, Status
from cronwarden.run_record import AnyRun
from cronwarden.runlog.excerpt import read_head
from cronwarden.store import Store
from cronwarden.support.clock import Cancellable, Clock

log = structlog.get_logger("cronwarden.alerts")

MISSED_GATHER = timedelta(seconds=1)  # missed fires of a task within this are one alert
DRAIN_AT_SHUTDOWN = 5.0
# Alerts that tell of something, not of something wrong: logged as info, not warnings.
NEWS = frozenset({"run.output", "task.recovered"})


class Alerts:
    def __init__(
        self,
        live: LiveConfig,
        store: Store,
        clock: Clock,
        *,
        node: str,
        base_url: str | None,
        run_json: Callable[[AnyRun], dict[str, Any]],
        on_outcome: Outcome,
        send: Send | None = None,
        logs_dir: Path | None = None,
    ) -> None:
        self.live = live
        self.store = store
        self.clock = clock
        self.node = node
        self.base_url = base_url
        self.run_json = run_json
        self.on_outcome = on_outcome
        self._send = send or self._send_to_target
        self.logs_dir = logs_dir  # where run output is read for alerts that quote it
        self.couriers: dict[str, Courier] = {}
        self.overdue = OverdueWatch()
        self._session: aiohttp.ClientSession | None = None
        self._apprise: AppriseSender | None = None
        self._excerpts: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._last_outcome: dict[str, str] = {}
        self._stuck: dict[str, Cancellable] = {}
        self._missed: dict[str, list[AnyRun]] = {}
        self._overdue_timer: Cancellable | None = None
        self._saving: set[asyncio.Task[None]] = set()

    # -- life -------------------------------------------------------------------------

    async def start(self, running: Iterable[AnyRun]) -> None:
        """Read back what the history says (last outcomes, last successes, the
        dead-man's switch state), and watch the runs a previous life left running."""
        now = self.clock.now()
        for run in running:
            self._arm_stuck(run)
        # Read only what some task needs: on a long history these are whole-index scans,
        # and the daemon is not READY until they are done.
        if any(notify for _, notify in self.live.tasks.field("notify")):
            last_runs = await self.store.last_runs()
            self._last_outcome = {t: r.end_reason for t, r in last_runs.items() if r.end_reason}
        limits = self._watched_limits()
        if not limits:
            return
        successes = await self.store.last_successes()
        states = await self.store.task_states()
        for name in limits:
            state = states.get(name)
            since = state.watched_since if state is not None else None
            watched = self.overdue.watch(name, since or now)
            watched.last_success = successes.get(name)
            watched.alerted_at = state.overdue_alerted_at if state is not None else None
            if since is None:
                self._save(name, watched_since=now)
        self._arm_overdue()

    def reloaded(self) -> None:
        """Targets and task keys may have changed: rebuild what depends on them."""
        for name, courier in list(self.couriers.items()):
            if self.live.current.notify.get(name) != courier.target:
                del self.couriers[name]  # its worker finishes what it holds
        now = self.clock.now()
        watched = self._watched_limits()
        for name in list(self.overdue.tasks):
            if name not in watched:
                self.overdue.forget(name)
        for name in watched:
            if name not in self.overdue.tasks:
                self.overdue.watch(name, now)
                self._save(name, watched_since=now)
        self._arm_overdue()

    async def close(self) -> None:
        for timer in [*self._stuck.values(), self._overdue_timer]:
            if timer is not None:
                timer.cancel()
        self._flush_missed()
        await asyncio.gather(*(c.drain(DRAIN_AT_SHUTDOWN) for c in self.couriers.values()))
        if self._saving:
            await asyncio.gather(*self._saving, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # -- run changes --------------------------------------------------------------------

    def on_change(self, kind: str, run: AnyRun) -> None:
        if kind == "run.started":
            self._arm_stuck(run)
        elif kind == "run.ended":
            self._ended(run)

    def _ended(self, run: AnyRun) -> None:
        timer = self._stuck.pop(run.id, None)
        if timer is not None:
            timer.cancel()
        reason = run.end_reason or ""
        task = self.live.tasks.get(run.task_name)
        if reason == EndReason.MISSED:
            self._gather_missed(run)
            return
        event = end_event(run, task)
        if event is not None:
            self.emit(
                AlertEvent(
                    event=event,
                    task=run.task_name,
                    at=self.clock.now(),
                    message=describe_end(run),
                    run=self.run_json(run),
                ),
                output_of=run,
            )
        if task is not None and self._wanted(task.notify, "run.output"):
            printed = output_event(run, self.run_json(run), self.clock.now())
            if printed is not None:
                self.emit(printed, output_of=run)
        if reason == EndReason.SUCCESS:
            self._succeeded(run)
        if reason == EndReason.SUCCESS or (reason in FAILING and event is not None):
            self._last_outcome[run.task_name] = reason

    def _succeeded(self, run: AnyRun) -> None:
        previous = self._last_outcome.get(run.task_name)
        was_overdue = self.overdue.succeeded(run.task_name, run.end_at or self.clock.now())
        after = (
            f"a run that ended {previous}"
            if previous in FAILING
            else "being overdue"
            if was_overdue
            else None
        )
        if after is not None:
            self.emit(recovered_event(run, self.run_json(run), after, self.clock.now()))
        if was_overdue:
            self._arm_overdue()

    def _gather_missed(self, run: AnyRun) -> None:
        waiting = self._missed.setdefault(run.task_name, [])
        waiting.append(run)
        if len(waiting) == 1:
            self.clock.call_at(self.clock.now() + MISSED_GATHER, self._flush_missed)

    def _flush_missed(self) -> None:
        gathered, self._missed = self._missed, {}
        for task, runs in gathered.items():
            self.emit(missed_event(task, runs, self.clock.now()))

    # -- timers -------------------------------------------------------------------------

    def _arm_stuck(self, run: AnyRun) -> None:
        task = self.live.tasks.get(run.task_name)
        if task is None or task.stuck_after <= timedelta(0) or run.id in self._stuck:
            return
        started = run.start_at or self.clock.now()
        limit = task.stuck_after
        self._stuck[run.id] = self.clock.call_at(
            started + limit, lambda: self._check_stuck(run, limit)
        )

    def _check_stuck(self, run: AnyRun, limit: timedelta) -> None:
        self._stuck.pop(run.id, None)
        if run.status == Status.RUNNING:  # the dispatcher's own record of the run
            self.emit(stuck_event(run, self.run_json(run), limit, self.clock.now()))

    def _watched_limits(self) -> dict[str, timedelta]:
        return {
            name: within
            for name, within in self.live.tasks.field("expect_success_within")
            if within > timedelta(0)
        }

    def _arm_overdue(self) -> None:
        if self._overdue_timer is not None:
            self._overdue_timer.cancel()
            self._overdue_timer = None
        when = self.overdue.next_due(self._watched_limits())
        if when is not None:
            self._overdue_timer = self.clock.call_at(when, self._check_overdue)

    def _check_overdue(self) -> None:
        self._overdue_timer = None
        now = self.clock.now()
        limits = self._watched_limits()
        for name in self.overdue.due(limits, now):
            watched = self.overdue.tasks[name]
            self._save(name, overdue_alerted_at=now)
            self.emit(overdue_event(name, watched.last_success, watched.since, limits[name], now))
        self._arm_overdue()

    # -- delivery -----------------------------------------------------------------------

    def emit(self, event: AlertEvent, output_of: AnyRun | None = None) -> None:
        """Raise an alert: logged, and queued for each target of its task that takes
        it.  ``output_of``: the run whose output the alert quotes (see CARRIES_OUTPUT)."""
        task = self.live.tasks.get(event.task)
        say = log.info if event.event in NEWS else log.warning
        say("alert.raised", alert_event=event.event, task=event.task, message=event.message)
        if task is None:
            return
        run_id = (event.run or {}).get("id")
        log_url = f"{self.base_url}/api/runs/{run_id}/log" if run_id and self.base_url else None
        body = event.body(self.node, log_url)
        targets = [
            (name, target)
            for name in task.notify
            if (target := self.live.current.notify.get(name)) is not None
            and event.event in target.events
        ]
        if targets and output_of is not None and event.event in CARRIES_OUTPUT:
            body["output"] = self._excerpt(output_of)  # read once, whatever the targets
        for name, target in targets:
            self._courier(name, target).post(body)

    def _wanted(self, names: Iterable[str], event: str) -> bool:
        """Whether some target among ``names`` takes ``event``."""
        notify = self.live.current.notify
        return any(name in notify and event in notify[name].events for name in names)

    def _excerpt(self, run: AnyRun) -> asyncio.Task[dict[str, Any]]:
        """The run's output excerpt, being read on a thread (a run's end and its
        run.output alert share one read)."""
        reading = self._excerpts.get(run.id)
        if reading is None:
            reading = asyncio.get_running_loop().create_task(
                self._read_excerpt(run.id, run.log_size), name=f"output of {run.id}"
            )
            self._excerpts[run.id] = reading
            reading.add_done_callback(lambda _: self._excerpts.pop(run.id, None))
        return reading

    async def _read_excerpt(self, run_id: str, size: int) -> dict[str, Any]:
        output: dict[str, Any] = {"text": "", "size": size, "truncated": False}
        if size <= 0 or self.logs_dir is None:
            return output
        try:
            head = await asyncio.to_thread(read_head, self.logs_dir, run_id, EXCERPT_BYTES)
        except OSError as exc:  # the alert goes out without it, saying why
            log.warning("alert.output_unread", run_id=run_id, error=str(exc))
            return {**output, "error": exc.strerror or type(exc).__name__}
        output["text"], output["truncated"] = cut_excerpt(head)
        return output

    def _courier(self, name: str, target: NotifyConfig) -> Courier:
        courier = self.couriers.get(name)
        if courier is None:
            courier = self.couriers[name] = Courier(name, target, self._send, self.on_outcome)
        return courier

    async def _send_to_target(self, target: NotifyConfig, event: Mapping[str, Any]) -> None:
        if target.type == "command":
            await send_command(target, event, command_env(event))
            return
        if target.type == "apprise":
            if self._apprise is None:
                self._apprise = AppriseSender()
            await self._apprise.send(target, event)
            return
        if self._session is None:
            self._session = aiohttp.ClientSession()
        await send_webhook(self._session, target, event)

    def _save(self, task: str, **values: datetime | None) -> None:
        """Persist the switch's state in the background (a lost write costs at most a
        repeated alert after a restart, never a missed one)."""

        async def save() -> None:
            try:
                await self.store.save_task_state(task, **values)
            except StoreUnavailable as exc:
                log.warning("alerts.state_not_saved", task=task, error=str(exc))

        job = asyncio.get_running_loop().create_task(save())
        self._saving.add(job)
        job.add_done_callback(self._saving.discard)


def base_url_of(host: str | None, port: int | None) -> str | None:
    """Where log links point: the API's TCP address (None on a unix socket)."""
    if host is None or port is None:
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
