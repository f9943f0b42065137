"""The scheduler service with a fake clock and a fake dispatcher (the scheduler's port,
scheduler/ports.py): reload and pause."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dispatch_doubles import FakeClock, LoopTurns  # type: ignore[import-not-found]

from cronwarden.config import TaskConfig, parse_config
from cronwarden.errors import StoreUnavailable
from cronwarden.model import Trigger
from cronwarden.scheduler.service import YIELD_EVERY, SchedulerService

T = datetime(2036, 5, 1, 12, 0, 30, tzinfo=UTC)


@dataclass
class FakeStore:
    anchors: dict[str, datetime] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def task_states(self) -> dict[str, Any]:
        return {name: type("S", (), s)() for name, s in self.states.items()}

    async def last_scheduled_for(self) -> dict[str, datetime]:
        return dict(self.anchors)

    async def save_task_state(self, name: str, **values: Any) -> None:
        self.states.setdefault(name, {}).update(values)


@dataclass
class FakeDispatcher:
    tasks: dict[str, TaskConfig]
    store: FakeStore = field(default_factory=FakeStore)
    fired: list[tuple[str, datetime, Trigger]] = field(default_factory=list)
    missed: list[tuple[str, list[datetime], int]] = field(default_factory=list)
    prepared: list[list[str]] = field(default_factory=list)

    def is_configured(self, name: str) -> bool:
        return name in self.tasks

    async def prepare(self, task_names: list[str]) -> None:
        self.prepared.append(list(task_names))

    async def discard_reserved(self, run_ids: list[str]) -> None:
        pass

    async def reserve(self, fires: list[tuple[str, datetime, datetime]]) -> dict[str, Any]:
        return {}  # nothing reserved: each fire is claimed at its instant

    async def fire_many(
        self, fires: list[tuple[str, datetime, Trigger]], reserved: Any = None
    ) -> list[Any]:
        self.fired.extend(fires)
        return []

    async def record_missed(self, name: str, fires: list[datetime], *, more: int, why: str) -> None:
        self.missed.append((name, fires, more))


def tasks(text: str) -> dict[str, TaskConfig]:
    return dict(parse_config(text, Path("/tmp/c.toml")).tasks)


async def started(
    text: str, anchors: dict[str, datetime] | None = None, paused: tuple[str, ...] = ()
):  # type: ignore[no-untyped-def]
    defs = tasks(text)
    dispatcher = FakeDispatcher(
        defs, FakeStore(anchors or {}, {p: {"paused": True} for p in paused})
    )
    clock = FakeClock(at=T)
    service = SchedulerService(dispatcher, dispatcher.store, clock)  # type: ignore[arg-type]
    await service.start(defs)
    await service.wait_inflight()
    return service, dispatcher, clock


HOURLY = '[tasks.a]\ncommand = "true"\nschedule = "0 * * * *"\ntimezone = "UTC"\n'


async def test_tasks_firing_soon_are_prepared_soonest_first_at_start_and_reload() -> None:
    soon = '[tasks.later]\ncommand = "true"\nschedule = "5 12 * * *"\ntimezone = "UTC"\n'
    soon += '[tasks.first]\ncommand = "true"\nschedule = "1 12 * * *"\ntimezone = "UTC"\n'
    service, dispatcher, _ = await started(HOURLY + soon)  # a fires in 29.5 minutes
    assert dispatcher.prepared == [["first", "later"]]
    service.apply(tasks(HOURLY + soon.replace('"true"', '"echo changed"')))
    await service.wait_inflight()
    assert dispatcher.prepared[1:] == [["first", "later"]]  # redone: their hash changed
    service.shutdown()


async def test_start_catches_up_from_the_anchor() -> None:
    service, dispatcher, _ = await started(HOURLY, {"a": T - timedelta(hours=3)})
    assert dispatcher.fired == [("a", datetime(2036, 5, 1, 12, tzinfo=UTC), Trigger.CATCH_UP)]
    assert service.next_fire_time("a") == datetime(2036, 5, 1, 13, tzinfo=UTC)
    service.shutdown()


async def test_reload_keeps_unchanged_and_never_fires_a_changed_schedule_early() -> None:
    service, _dispatcher, clock = await started(
        HOURLY + '[tasks.b]\ncommand = "true"\nschedule = "*/10 * * * *"\ntimezone = "UTC"\n'
    )
    before = service.next_fire_time("a")
    clock.at = T + timedelta(minutes=5)
    changes = service.apply(
        tasks(
            '[tasks.a]\ncommand = "echo changed"\nschedule = "0 * * * *"\ntimezone = "UTC"\n'
            '[tasks.b]\ncommand = "true"\nschedule = "*/7 * * * *"\ntimezone = "UTC"\n'
            '[tasks.c]\ncommand = "true"\nschedule = "@hourly"\ntimezone = "UTC"\n'
        )
    )
    assert changes == {"added": ["c"], "removed": [], "changed": ["b"]}
    assert service.next_fire_time("a") == before  # a's command changed, not its timing
    nxt = service.next_fire_time("b")
    assert nxt is not None and nxt > clock.at and nxt.minute % 7 == 0
    assert service.next_fire_time("c") == datetime(2036, 5, 1, 13, tzinfo=UTC)
    service.shutdown()


async def test_reload_retimes_a_new_zone_or_jitter_and_follows_other_changes() -> None:
    every_hour = 'command = "true"\nschedule = "0 * * * *"\ntimezone = "UTC"\n'
    service, dispatcher, clock = await started(
        f"[tasks.a]\n{every_hour}[tasks.b]\n{every_hour}[tasks.c]\n{every_hour}"
    )
    changes = service.apply(
        tasks(
            f"[tasks.a]\n{every_hour.replace('UTC', 'Asia/Kolkata')}"  # +05:30
            f'[tasks.b]\n{every_hour}catch_up = "skip"\n'
            f'[tasks.c]\n{every_hour}jitter = "20m"\n'
        )
    )
    assert changes == {"added": [], "removed": [], "changed": ["a", "c"]}
    assert service.next_fire_time("a") == datetime(2036, 5, 1, 12, 30, tzinfo=UTC)
    assert service.next_fire_time("b") == datetime(2036, 5, 1, 13, tzinfo=UTC)
    # b kept its timer but follows its new catch_up: a wake hours late runs nothing.
    clock.at = datetime(2036, 5, 1, 16, 0, 5, tzinfo=UTC)
    service._due("b", datetime(2036, 5, 1, 13, tzinfo=UTC))
    await service.wait_inflight()
    assert [f for f in dispatcher.fired if f[0] == "b"] == []
    assert [(name, len(fires)) for name, fires, _ in dispatcher.missed] == [("b", 4)]
    service.shutdown()


async def test_reload_after_a_fire_does_not_fire_it_again() -> None:
    service, dispatcher, clock = await started(HOURLY)
    clock.at = datetime(2036, 5, 1, 13, 0, 0, 100000, tzinfo=UTC)
    service._due("a", datetime(2036, 5, 1, 13, tzinfo=UTC))
    await service.wait_inflight()
    # the new schedule also matches 13:00, which was just handled
    service.apply(
        tasks('[tasks.a]\ncommand = "true"\nschedule = "0 13,14 * * *"\ntimezone = "UTC"\n')
    )
    assert service.next_fire_time("a") == datetime(2036, 5, 1, 14, tzinfo=UTC)
    assert [f[1].hour for f in dispatcher.fired] == [13]
    service.shutdown()


async def test_removed_and_disabled_tasks_stop_firing() -> None:
    service, _, _ = await started(HOURLY + '[tasks.b]\ncommand = "true"\nschedule = "@hourly"\n')
    changes = service.apply(
        tasks('[tasks.b]\ncommand = "true"\nschedule = "@hourly"\nenabled = false\n')
    )
    assert sorted(changes["removed"]) == ["a", "b"]
    assert service.next_fire_time("a") is None and service.next_fire_time("b") is None
    service.shutdown()


async def test_a_paused_task_is_not_timed_and_a_resume_does_not_catch_up() -> None:
    """Timing only: storing and saying a pause is cronwarden/pauses.py's (test_pauses.py)."""
    service, dispatcher, clock = await started(HOURLY)
    service.follow_pause("a", paused=True)
    assert service.next_fire_time("a") is None
    service._due("a", datetime(2036, 5, 1, 13, tzinfo=UTC))  # a paused task ignores its timer
    clock.at = T + timedelta(hours=3)
    service.follow_pause("a", paused=False)
    await service.wait_inflight()
    assert dispatcher.fired == []
    assert service.next_fire_time("a") == datetime(2036, 5, 1, 16, tzinfo=UTC)
    service.shutdown()


async def test_a_task_paused_before_the_start_is_not_caught_up() -> None:
    defs = tasks(HOURLY)
    dispatcher = FakeDispatcher(defs, FakeStore({"a": T - timedelta(hours=3)}))
    service = SchedulerService(dispatcher, dispatcher.store, FakeClock(at=T))  # type: ignore[arg-type]
    service.follow_pause("a", paused=True)  # as cronwarden/pauses.py loads the stored pauses
    await service.start(defs)
    await service.wait_inflight()
    assert service.next_fire_time("a") is None
    assert dispatcher.fired == []
    service.shutdown()


async def test_late_wake_is_reported_and_caught_up() -> None:
    service, dispatcher, clock = await started(
        '[tasks.a]\ncommand = "true"\nschedule = "* * * * *"\ntimezone = "UTC"\n'
        'catch_up = "latest"\n',
        {"a": T - timedelta(seconds=30)},
    )
    dispatcher.fired.clear()
    clock.at = T + timedelta(minutes=10)  # the loop was blocked or the host slept
    service._due("a", datetime(2036, 5, 1, 12, 1, tzinfo=UTC))
    await service.wait_inflight()
    assert dispatcher.fired == [("a", datetime(2036, 5, 1, 12, 10, tzinfo=UTC), Trigger.CATCH_UP)]
    # The nine fires it slept through are recorded as missed runs (12:01 .. 12:09).
    minutes = [datetime(2036, 5, 1, 12, m, tzinfo=UTC) for m in range(1, 10)]
    assert dispatcher.missed == [("a", minutes, 0)]
    service.shutdown()


async def test_a_schedule_changed_to_reboot_or_none_stops_its_timer() -> None:
    service, _, _ = await started(HOURLY + '[tasks.b]\ncommand = "true"\nschedule = "@hourly"\n')
    changes = service.apply(
        tasks('[tasks.a]\ncommand = "true"\nschedule = "@reboot"\n[tasks.b]\ncommand = "true"\n')
    )
    assert sorted(changes["removed"]) == ["a", "b"]
    assert service.next_fire_time("a") is None and service.next_fire_time("b") is None
    service.shutdown()


async def test_the_timer_fires_each_task_at_its_time_and_times_the_next() -> None:
    service, dispatcher, clock = await started(
        HOURLY + '[tasks.b]\ncommand = "true"\nschedule = "30 * * * *"\ntimezone = "UTC"\n'
    )
    dispatcher.fired.clear()

    def at(hour: int, minute: int) -> datetime:
        return datetime(2036, 5, 1, hour, minute, tzinfo=UTC)

    for now, fired in ((at(12, 30), "b"), (at(13, 0), "a"), (at(13, 30), "b")):
        clock.advance(now + timedelta(milliseconds=1) - clock.at)
        await service.wait_inflight()
        assert dispatcher.fired[-1] == (fired, now, Trigger.SCHEDULE)
    assert len(dispatcher.fired) == 3
    assert service.next_fire_time("a") == at(14, 0)
    assert service.next_fire_time("b") == at(14, 30)
    service.shutdown()
    assert clock.armed == []  # a stopped scheduler leaves no timer behind


@dataclass
class FlakyDispatcher(FakeDispatcher):
    """A dispatcher whose store is down while ``down`` is set."""

    down: bool = False
    claims: list[list[tuple[str, datetime, Trigger]]] = field(default_factory=list)

    async def discard_reserved(self, run_ids: list[str]) -> None:
        if self.down:
            raise StoreUnavailable("the database is unavailable: (simulated outage)")

    async def fire_many(
        self, fires: list[tuple[str, datetime, Trigger]], reserved: Any = None
    ) -> list[Any]:
        if self.down:
            raise StoreUnavailable("the database is unavailable: (simulated outage)")
        self.claims.append(list(fires))
        return await super().fire_many(fires, reserved)


async def test_fires_waiting_on_the_store_go_together_oldest_first_and_late_ones_are_missed() -> (
    None
):
    defs = tasks(
        '[tasks.a]\ncommand = "true"\nschedule = "* * * * * *"\ntimezone = "UTC"\n'
        '[tasks.b]\ncommand = "true"\nschedule = "* * * * * *"\ntimezone = "UTC"\n'
    )
    dispatcher = FlakyDispatcher(defs)
    clock = FakeClock(at=T)
    service = SchedulerService(dispatcher, dispatcher.store, clock)  # type: ignore[arg-type]
    await service.start(defs)
    dispatcher.down = True
    second = timedelta(seconds=1)
    for i in range(1, 41):  # a 40 s outage: each second's fires come due and wait
        clock.at = T + i * second
        service._due("b", clock.at)
        service._due("a", clock.at)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert dispatcher.claims == [] and dispatcher.missed == []
    dispatcher.down = False
    await until(lambda: dispatcher.claims and dispatcher.missed)
    # What waited within its grace goes in one claim, oldest first.
    fresh = [T + i * second for i in range(10, 41)]
    assert dispatcher.claims[0] == [
        (name, at, Trigger.SCHEDULE) for at in fresh for name in ("a", "b")
    ]
    # What waited past its grace is recorded missed, per task, none twice.
    late = [T + i * second for i in range(1, 10)]  # 30 s and more before now
    assert sorted(dispatcher.missed) == [("a", late, 0), ("b", late, 0)]
    service.shutdown()
    await service.wait_inflight()


async def until(predicate: Any, within: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "not met in time"
        await asyncio.sleep(0.01)


async def test_timing_many_tasks_at_start_up_lets_the_loop_turn() -> None:
    """SIGTERM, /health and fires already due get turns while 100,000 tasks are timed
    (tests/integration/test_stop_while_starting.py has the daemon's side)."""
    count = 3 * YIELD_EVERY
    defs = tasks(
        "".join(f'[tasks.t{i}]\nschedule = "0 3 * * *"\ncommand = "true"\n' for i in range(count))
    )
    dispatcher = FakeDispatcher(defs)
    service = SchedulerService(dispatcher, dispatcher.store, FakeClock(at=T))  # type: ignore[arg-type]
    async with LoopTurns() as turns:
        await service.start(defs)
    assert turns.count >= 3, "the loop never turned while the tasks were timed"
    assert all(service.next_fire_time(name) for name in defs)  # every task timed all the same
