"""Doubles for driving the real Dispatcher without processes, database or waiting:
a fake clock whose timers fire when the test advances it, a launcher whose "processes"
end when the test says, and the in-memory store that remembers every end record."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cronwarden.config import Config, TaskConfig, parse_config
from cronwarden.live_config import LiveConfig
from cronwarden.model import EndReason, Run, Status
from cronwarden.ports import SharedPlaces
from cronwarden.run_record import RunRecord, run_row
from cronwarden.runlog.summary import LogSummary
from cronwarden.runners.dispatch import Dispatcher
from cronwarden.runners.execute import RunControl, StartedCallback
from cronwarden.runners.launch import NO_LOG, Ending, Launcher
from cronwarden.runners.outcome import Outcome
from cronwarden.runners.process import AdoptedProcess
from cronwarden.runners.rows import NewRuns
from cronwarden.store.memory import MemoryStore

T0 = datetime(2031, 1, 6, 9, 0, tzinfo=UTC)
FAKE_PID = 2**22 + 7  # above pid_max: /proc never has it


@dataclass
class FakeTimer:
    when: datetime
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeClock:
    at: datetime = T0
    timers: list[FakeTimer] = field(default_factory=list)

    def now(self) -> datetime:
        return self.at

    def call_at(self, when: datetime, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(when, callback)
        self.timers.append(timer)
        return timer

    @property
    def armed(self) -> list[datetime]:
        """When the timers not cancelled are due, soonest first."""
        return sorted(t.when for t in self.timers if not t.cancelled)

    def advance(self, by: timedelta) -> None:
        """Move time on and fire the timers that came due, in time order, and those
        their callbacks set for a time that has come (as the event loop would)."""
        self.at += by
        while due := sorted(
            (t for t in self.timers if not t.cancelled and t.when <= self.at), key=lambda t: t.when
        ):
            self.timers = [t for t in self.timers if t not in due and not t.cancelled]
            for timer in due:
                timer.callback()


class FakeLauncher:
    """Each run "runs" until ``finish`` is called for it or it is asked to stop."""

    artifacts = None  # no run leaves files

    def __init__(self) -> None:
        self.live: dict[str, tuple[str, asyncio.Future[Outcome]]] = {}  # id -> (task, end)
        self.started: list[str] = []
        self.tokens: dict[str, str | None] = {}  # id -> the report token it started with

    async def run(
        self, run: Run, task: TaskConfig, control: RunControl, on_started: StartedCallback
    ) -> Ending:
        self.tokens[run.id] = getattr(run, "report_token", None)
        on_started(FAKE_PID, lambda: None)
        return await self._until_end(run, control)

    async def watch(
        self, run: Run, task: TaskConfig, control: RunControl, process: AdoptedProcess
    ) -> Ending:
        return await self._until_end(run, control)

    def close_inherited_log(self, run_id: str, note: str) -> LogSummary:
        return NO_LOG

    def finish(self, run_id: str, reason: EndReason = EndReason.SUCCESS) -> None:
        self.live[run_id][1].set_result(Outcome(reason, exit_code=0 if reason == "success" else 1))

    def running(self, task_name: str | None = None) -> list[str]:
        return [i for i, (t, _) in self.live.items() if task_name in (None, t)]

    async def _until_end(self, run: Run, control: RunControl) -> Ending:
        end: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.live[run.id] = (run.task_name, end)
        self.started.append(run.id)
        try:
            await asyncio.wait({end, control.stop.settled()}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            del self.live[run.id]
        if end.done():
            return Ending(end.result())
        return Ending(Outcome(EndReason.STOPPED, signal=15))


class RecordingStore(MemoryStore):
    """MemoryStore that remembers every write of an end, to check "ends exactly once"."""

    def __init__(self) -> None:
        super().__init__()
        self.end_records: list[str] = []

    async def record(self, run_id: str, values: Mapping[str, Any]) -> None:
        await super().record(run_id, values)
        if values.get("status") == Status.ENDED:
            self.end_records.append(run_id)

    def plant(self, run: RunRecord) -> None:
        """A row as an earlier daemon life left it, put straight into the store."""
        self.runs[run.id] = Run(**{**run_row(run), "params": dict(run.params)})

    async def claim(self, runs: Any) -> set[str]:
        claimed = await super().claim(runs)
        self.end_records += [r.id for r in runs if r.id in claimed and r.status == Status.ENDED]
        return claimed


def config(tasks: str) -> Config:
    return parse_config(tasks, Path("/tmp/cronwarden-test.toml"))


@dataclass
class Rig:
    dispatcher: Dispatcher
    store: RecordingStore
    launcher: FakeLauncher
    clock: FakeClock
    live: LiveConfig
    new_run: NewRuns  # rows as the dispatcher makes them, for runs a test plants
    changes: list[tuple[str, str]] = field(default_factory=list)  # (kind, run id) told


def rig(
    tasks: str,
    *,
    places: SharedPlaces | None = None,
    launcher: Callable[[FakeClock], Launcher] | None = None,
    store: RecordingStore | None = None,
) -> Rig:
    """The real Dispatcher on the in-memory store and the fake clock; ``launcher``
    makes a real one instead of the fake (given the clock), ``places`` stands for
    other nodes sharing the database."""
    store = store if store is not None else RecordingStore()
    fake, clock = FakeLauncher(), FakeClock()
    live = LiveConfig(config(tasks))
    changes: list[tuple[str, str]] = []
    dispatcher = Dispatcher(
        store,
        live,
        node="n1",
        launcher=launcher(clock) if launcher is not None else fake,
        clock=clock,
        places=places,
        on_change=lambda kind, run: changes.append((kind, run.id)),
    )
    return Rig(dispatcher, store, fake, clock, live, NewRuns(live, clock, "n1"), changes)


class HeldPacer:
    """Spawn turns given only once the test opens them: the daemon is behind."""

    def __init__(self) -> None:
        self.open = asyncio.Event()

    async def turn(self) -> None:
        await self.open.wait()


class LoopTurns:
    """Counts the turns the event loop gives other work, from entering the block to
    leaving it: a task that only yields, as a request or a signal would wait."""

    def __init__(self) -> None:
        self.count = 0
        self._turning: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopTurns:
        self._turning = asyncio.ensure_future(self._turn())
        await asyncio.sleep(0)  # its first turn
        self.count = 0
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._turning is not None
        self._turning.cancel()

    async def _turn(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)


async def settle(rounds: int = 30) -> None:
    """Let every ready coroutine run to its next real wait."""
    for _ in range(rounds):
        await asyncio.sleep(0)
