"""The scheduler: it times fires (one FireTimer for every task); cronwarden decides
what a fire means.

Every due fire is handed to this service, which applies the task's catch-up policy and
records each outcome as a run or a logged ``fire.missed``, so nothing is ever dropped
silently.  Each timed fire's row is reserved ahead of its instant (what that means:
cronwarden/reservations.py; those in flight: scheduler/reserving.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from cronwarden.config import TaskConfig
from cronwarden.model import Trigger
from cronwarden.placement import runs_on
from cronwarden.reservations import reserve_ahead
from cronwarden.scheduler.catchup import LATE_GRACE, plan_fires
from cronwarden.scheduler.claims import ClaimLine, DueFire
from cronwarden.scheduler.policies import CatchUp, jitter_offset
from cronwarden.scheduler.ports import Dispatch
from cronwarden.scheduler.reserving import Reservation, Reservations
from cronwarden.scheduler.timer import FireTimer
from cronwarden.scheduler.triggers import AnyTrigger, RebootTrigger
from cronwarden.support.clock import Clock
from cronwarden.support.turns import share_the_loop

log = structlog.get_logger("cronwarden.scheduler")

# Timing a task at start-up takes ~40 us: 100,000 tasks held the loop ~4 s, and with
# it SIGTERM, /health and the fires already due.  Other work gets a turn this often.
YIELD_EVERY = 1_000
# Tasks firing this soon after a start or a reload have what their first fire works
# out prepared ahead (Dispatch.prepare); later ones work it out when they fire, so a
# daemon of 100,000 tasks spread over the week keeps nothing for them in memory.
PREPARE_AHEAD = timedelta(minutes=10)

_Fire = tuple[str, datetime, Trigger]  # task, nominal fire time, how it was triggered


class TaskStateStore(Protocol):
    """What the scheduler keeps across restarts: the catch-up anchors (the pauses are
    cronwarden/pauses.py's)."""

    async def last_scheduled_for(self) -> dict[str, datetime]: ...

    async def own_fires(self, node: str, task_names: list[str]) -> dict[str, datetime]:
        """Per task, the newest fire ``node`` handled as its own (on_every_node)."""
        ...


@dataclass(slots=True)
class _Scheduled:
    """What timing a task needs of its definition (one per timed task: the definition
    itself stays packed in the config, see cronwarden/packed.py)."""

    name: str
    trigger: AnyTrigger
    catch_up: CatchUp
    max_catch_up: int
    offset: timedelta
    anchor: datetime | None  # the newest nominal fire already handled

    @classmethod
    def of(cls, task: TaskConfig, anchor: datetime | None) -> _Scheduled:
        assert task.trigger is not None
        offset = jitter_offset(task.name, task.jitter)
        return cls(task.name, task.trigger, task.catch_up, task.max_catch_up, offset, anchor)

    def times_like(self, task: TaskConfig) -> bool:
        """Whether ``task`` fires at the instants this entry was timed for."""
        return self.trigger == task.trigger and self.offset == jitter_offset(task.name, task.jitter)

    def follow(self, task: TaskConfig) -> None:
        """A reload changed the task but not its timing."""
        self.catch_up = task.catch_up
        self.max_catch_up = task.max_catch_up


class SchedulerService:
    def __init__(
        self, dispatcher: Dispatch, state: TaskStateStore, clock: Clock, node: str | None = None
    ) -> None:
        self.dispatcher = dispatcher
        self.state = state
        self.clock = clock
        # This node's name: tasks whose `nodes` it does not match are never timed here
        # (None: every task is, as for a scheduler that is no node's).
        self.node = node
        self._timer = FireTimer(clock, self._due, on_soon=self._soon, lead=reserve_ahead)
        self._scheduled: dict[str, _Scheduled] = {}
        self._paused: set[str] = set()
        self._inflight: set[asyncio.Task[Any]] = set()
        # Fires of this loop turn, with their reservation if any.
        self._due_now: list[tuple[str, datetime, Trigger, Reservation | None]] = []
        self._reservations = Reservations(
            dispatcher, self._spawn, next_fire=self._timer.next_fire, running=lambda: self.running
        )
        # Fires on their way to their claim, waiting in one line while the store is down.
        self._claims = ClaimLine(dispatcher, clock, lambda: self.running, self._spawn)
        self.running = False

    async def start(
        self,
        tasks: Mapping[str, TaskConfig],
        reboots_due: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        """Catch up what was missed while down, fire @reboot tasks, start timing.

        ``reboots_due`` picks the @reboot tasks still to fire in this machine boot
        (scheduler/boot.py); without it each start counts as a boot."""
        anchors = await self.state.last_scheduled_for()
        self._timer.start()
        self.running = True
        # One instant for all tasks: tasks sharing a schedule then ask their trigger
        # the same question, answered once (see triggers._cached_next_fire).
        now = self.clock.now()
        reboots: list[str] = []
        every_node: list[TaskConfig] = []
        # One pass: each read of a packed task builds it.
        for count, task in enumerate(tasks.values(), start=1):
            await share_the_loop(count, YIELD_EVERY)
            if not self._here(task):
                continue
            if task.enabled and isinstance(task.trigger, RebootTrigger):
                reboots.append(task.name)
            if not _on_a_timer(task):
                continue
            if task.on_every_node:
                every_node.append(task)  # anchored on this node's own fires, below
                continue
            self._begin(task, anchors.get(task.name), now)
        if every_node:
            names = [task.name for task in every_node]
            own = anchors if self.node is None else await self.state.own_fires(self.node, names)
            for task in every_node:
                self._begin(task, own.get(task.name), now)
        for name in reboots_due(reboots) if reboots_due and reboots else reboots:
            self._fire(name, now, Trigger.SCHEDULE)
        self._prepare_soon()

    def _begin(self, task: TaskConfig, anchor: datetime | None, now: datetime) -> None:
        """Time a task at start-up, catching up from ``anchor`` (the newest fire handled:
        for an on_every_node task, handled by this node, so a node that joins late
        catches up on no fire from before it joined)."""
        entry = self._add(task, anchor, now)
        if task.name not in self._paused:
            self._carry_out(entry, due=None, now=now)

    def _here(self, task: TaskConfig) -> bool:
        """Whether this node may fire ``task`` (its `nodes` patterns)."""
        return self.node is None or runs_on(task, self.node)

    def shutdown(self) -> None:
        if self.running:
            self._timer.stop()
            self.running = False

    async def wait_inflight(self) -> None:
        """After shutdown(): let claims in flight land, and delete unused reservations."""
        self._claim_due()
        self._reservations.close()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    # -- queries ---------------------------------------------------------------------

    def next_instant(self) -> datetime | None:
        """The next instant any task of this node fires (jitter included)."""
        return self._timer.earliest()

    def next_fire_time(self, task_name: str) -> datetime | None:
        """The next nominal fire (jitter not included), None when paused or unscheduled."""
        if task_name in self._paused:
            return None
        when = self._timer.next_fire(task_name)
        entry = self._scheduled.get(task_name)
        if when is None or entry is None:
            return None
        return when - entry.offset

    # -- pause / resume --------------------------------------------------------------

    def follow_pause(self, task_name: str, *, paused: bool) -> None:
        """Stop or start timing a task's fires.  Pauses belong to cronwarden/pauses.py,
        which stores them and says so: it tells this service of those stored before
        ``start``, then of each change.  A resume times from now: the fires of the
        pause were asked not to happen, so none is caught up."""
        if paused == (task_name in self._paused):
            return
        if paused:
            self._paused.add(task_name)
            self._untime(task_name)
            return
        self._paused.discard(task_name)
        entry = self._scheduled.get(task_name)
        if entry is not None:
            entry.anchor = self.clock.now()
            self._reschedule(entry)

    # -- reload -----------------------------------------------------------------------

    def apply(self, tasks: Mapping[str, TaskConfig]) -> dict[str, list[str]]:
        """Apply a new set of definitions; unchanged schedules keep their next fire."""
        changes: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
        for name in list(self._scheduled):
            new = tasks.get(name)
            if new is None or not _on_a_timer(new) or not self._here(new):
                self._remove(name)
                changes["removed"].append(name)
        for name, task in tasks.items():
            if not _on_a_timer(task) or not self._here(task):
                continue
            old = self._scheduled.get(name)
            if old is None:
                self._add(task, None)
                changes["added"].append(name)
            elif not old.times_like(task):
                # Never early, never twice: continue after the later of now and the last fire.
                anchor = max(filter(None, [old.anchor, self.clock.now()]))
                self._remove(name)
                self._add(task, anchor)
                changes["changed"].append(name)
            else:
                old.follow(task)
        self._prepare_soon()  # a definition changed need not change its timing
        return changes

    # -- internals --------------------------------------------------------------------

    def _prepare_soon(self) -> None:
        """Have the timed tasks that fire within PREPARE_AHEAD prepared, soonest first."""
        horizon = self.clock.now() + PREPARE_AHEAD
        soon = sorted(
            (when, name)
            for name in self._scheduled
            if (when := self._timer.next_fire(name)) is not None and when <= horizon
        )
        if soon:
            self._spawn(self.dispatcher.prepare([name for _, name in soon]))

    def _add(
        self, task: TaskConfig, anchor: datetime | None, now: datetime | None = None
    ) -> _Scheduled:
        entry = _Scheduled.of(task, anchor)
        self._scheduled[task.name] = entry
        self._reschedule(entry, now)
        return entry

    def _reschedule(self, entry: _Scheduled, now: datetime | None = None) -> None:
        """Time the next fire after the later of now and the anchor (never early)."""
        now = now or self.clock.now()
        self._time_next(entry, after=max(filter(None, [entry.anchor, now])))

    def _time_next(self, entry: _Scheduled, after: datetime) -> None:
        name = entry.name
        self._untime(name)
        nominal = entry.trigger.next_fire(after)
        if nominal is not None and name not in self._paused:
            # Without jitter the instant is the trigger's own (shared) datetime.
            self._timer.set(name, nominal + entry.offset if entry.offset else nominal)

    def _remove(self, name: str) -> None:
        self._scheduled.pop(name, None)
        self._untime(name)

    def _untime(self, name: str) -> None:
        """The task's next fire is off (for now): so is its reservation."""
        self._timer.clear(name)
        self._reservations.release(name)

    def _due(self, task_name: str, when: datetime) -> None:
        """The timer's call: a task's (jittered) fire time came."""
        entry = self._scheduled.get(task_name)
        if entry is None or task_name in self._paused:
            return
        due = when - entry.offset
        self._carry_out(entry, due=due)
        # The next fire follows the one handled, or now if the wake came late: fires
        # slept through were worked out by _carry_out under the catch-up policy.
        now = self.clock.now() - entry.offset
        self._time_next(entry, after=max(filter(None, [entry.anchor, due, now])))

    def _carry_out(
        self, entry: _Scheduled, due: datetime | None, now: datetime | None = None
    ) -> None:
        """Plan the fires (pure), then dispatch them and report what was dropped."""
        name = entry.name
        now = now or self.clock.now()
        plan = plan_fires(
            entry.trigger,
            anchor=entry.anchor,
            due=due,
            now=now,
            offset=entry.offset,
            catch_up=entry.catch_up,
            max_catch_up=entry.max_catch_up,
        )
        entry.anchor = plan.anchor
        if due is not None and plan.run != [(due, Trigger.SCHEDULE)] and (plan.run or plan.dropped):
            log.warning(
                "scheduler.woke_late",
                task=name,
                due=due.isoformat(),
                late_s=round((now - due).total_seconds(), 3),
            )
        if plan.dropped:
            log.warning(
                "fire.missed",
                task=name,
                missed=plan.dropped,
                exact=plan.dropped_exact,
                catch_up=entry.catch_up,
            )
            why = (
                f"the daemon was down or asleep at this time (catch_up = {entry.catch_up}, "
                f"max_catch_up = {entry.max_catch_up})"
            )
            self._spawn(self.dispatcher.record_missed(name, plan.missed, more=plan.more, why=why))
        for fire, how in plan.run:
            self._fire(name, fire, how)

    def _soon(self, task_name: str, when: datetime) -> None:
        """The timer's call ahead of a fire: reserve its row."""
        entry = self._scheduled.get(task_name)
        if entry is None or task_name in self._paused:
            return
        self._reservations.announce(task_name, when - entry.offset, when)

    def _fire(self, task_name: str, scheduled_for: datetime, trigger: Trigger) -> None:
        """Queue a fire; all fires that come due in one turn of the loop (the timer
        hands over every due task in one go) are claimed together, in one write."""
        reservation = self._reservations.take(task_name, scheduled_for)
        if not self._due_now:
            asyncio.get_running_loop().call_soon(self._claim_due)
        self._due_now.append((task_name, scheduled_for, trigger, reservation))

    def _claim_due(self) -> None:
        if self._due_now:
            fires, self._due_now = self._due_now, []
            self._spawn(self._claim(fires))

    async def _claim(self, due: list[tuple[str, datetime, Trigger, Reservation | None]]) -> None:
        """Claim and start fires.  While the store does not answer, fires wait for it in
        one line (scheduler/claims.py); a fire whose reservation failed is claimed now, as
        if it had none."""
        fires: list[DueFire] = []
        give_up_at = self.clock.now() + LATE_GRACE
        for task_name, scheduled_for, trigger, reservation in due:
            fire = DueFire(task_name, scheduled_for, trigger, give_up_at)
            if reservation is not None:
                await reservation.fill(fire)
            fires.append(fire)
        await self._claims.submit(fires)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start ``coro``; what is started here is waited for at shutdown."""
        task = asyncio.get_running_loop().create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task


def _on_a_timer(task: TaskConfig) -> bool:
    """Whether the task fires on a clock (not when disabled, unscheduled or @reboot)."""
    return task.enabled and task.trigger is not None and not isinstance(task.trigger, RebootTrigger)
