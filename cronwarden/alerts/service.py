"""Alerts: run changes and timers in, deliveries to ``[notify.*]`` targets out.

A task's ``notify`` names the targets its alerts go to, and a target's ``tasks`` globs
route more tasks' alerts to it; a target's ``events`` says which it takes.  Everything
here runs beside the dispatcher, never in its way: an alert is put on its target's
queue and the run goes on.  What a run's end raises is decided in ends.py, the timers
on runs in flight are run_watch.py's, the dead-man's switch is overdue.py's.
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
from cronwarden.alerts.ends import RunEnds
from cronwarden.alerts.missed import MissedFires
from cronwarden.alerts.output import CARRIES_OUTPUT, EXCERPT_BYTES, cut_excerpt
from cronwarden.alerts.overdue import OverdueWatch
from cronwarden.alerts.rules import AlertEvent, missed_event, overdue_event
from cronwarden.alerts.run_watch import RunWatch
from cronwarden.alerts.senders import command_env, send_command, send_webhook
from cronwarden.config import NotifyConfig, alert_targets
from cronwarden.errors import StoreUnavailable
from cronwarden.live_config import LiveConfig
from cronwarden.model import EndReason
from cronwarden.run_record import AnyRun
from cronwarden.runlog.excerpt import read_head
from cronwarden.store import Store
from cronwarden.support.clock import Cancellable, Clock

log = structlog.get_logger("cronwarden.alerts")

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
        self._missed = MissedFires()
        self._overdue_timer: Cancellable | None = None
        self._saving: set[asyncio.Task[None]] = set()
        self.watch = RunWatch(live, clock, emit=self.emit, save=self._save, run_json=run_json)
        self.ends = RunEnds(
            live, store, clock, emit=self.emit, run_json=run_json, succeeded=self._succeeded
        )

    # -- life -------------------------------------------------------------------------

    async def start(self, running: Iterable[AnyRun]) -> None:
        """Read back what the store says (last successes, the dead-man's switch, the
        runs told too long), and watch the runs a previous life left running."""
        now = self.clock.now()
        running = list(running)
        limits = self._watched_limits()
        # Read only what some task needs: the daemon is not READY until it is read.
        long_watched = any(limit for _, limit in self.live.tasks.field("max_duration"))
        states = await self.store.task_states() if limits or (running and long_watched) else {}
        self.watch.too_long_start = {
            name: state.too_long_alerted_start
            for name, state in states.items()
            if state.too_long_alerted_start is not None
        }
        self.watch.adopted(running)
        if not limits:
            return
        successes = await self.store.last_successes()
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
        self.watch.close()
        if self._overdue_timer is not None:
            self._overdue_timer.cancel()
        await self.ends.settled()
        now = self.clock.now()
        for task, runs in self._missed.take_all(now).items():
            self.emit(missed_event(task, runs, now))
        await asyncio.gather(*(c.drain(DRAIN_AT_SHUTDOWN) for c in self.couriers.values()))
        if self._saving:
            await asyncio.gather(*self._saving, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # -- run changes --------------------------------------------------------------------

    def on_change(self, kind: str, run: AnyRun) -> None:
        self.watch.on_change(kind, run)
        if kind != "run.ended":
            return
        if run.end_reason == EndReason.MISSED:
            self._gather_missed(run)
        else:
            self.ends.ended(run)

    def _succeeded(self, run: AnyRun) -> str | None:
        """A success ends the silence of the dead-man's switch: "being overdue" if
        that silence was told."""
        was_overdue = self.overdue.succeeded(run.task_name, run.end_at or self.clock.now())
        if not was_overdue:
            return None
        self._arm_overdue()
        return "being overdue"

    def _gather_missed(self, run: AnyRun) -> None:
        due = self._missed.add(run, self.clock.now())
        if due is not None:
            self.clock.call_at(due, lambda: self._alert_missed(run.task_name))

    def _alert_missed(self, task: str) -> None:
        now = self.clock.now()
        runs = self._missed.take(task, now)
        if runs:
            self.emit(missed_event(task, runs, now))
        self._missed.forget_quiet(now)

    # -- timers -------------------------------------------------------------------------

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
        targets = alert_targets(self.live.current.notify, task.name, task.notify, event.event)
        if targets and output_of is not None and event.event in CARRIES_OUTPUT:
            body["output"] = self._excerpt(output_of)  # read once, whatever the targets
        for name, target in targets:
            self._courier(name, target).post(body)

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
