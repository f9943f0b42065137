"""The owner of paused tasks (cronwarden/pauses.py) with the in-memory store, a fake
scheduler and a fake fleet channel: two Pauses on one store are two nodes sharing a
database."""

from __future__ import annotations

import asyncio
from collections.abc import Container
from dataclasses import dataclass, field

import pytest

from cronwarden.errors import StoreUnavailable, TaskNotFound
from cronwarden.pauses import Pauses, TaskChange
from cronwarden.store.memory import MemoryStore


@dataclass
class Timing:
    """The scheduler's side: which tasks it times, and what it was told."""

    told: list[tuple[str, bool]] = field(default_factory=list)

    def follow_pause(self, task_name: str, *, paused: bool) -> None:
        self.told.append((task_name, paused))


@dataclass
class Tasks:
    names: set[str] = field(default_factory=lambda: {"a", "b"})

    def task(self, name: str) -> object:
        if name not in self.names:
            raise TaskNotFound(f"no task is named {name!r}")
        return name

    @property
    def tasks(self) -> Container[str]:
        return self.names


@dataclass
class Channel:
    """NodeRegistry's part: the flags as every node reads them, and the wake-ups."""

    store: MemoryStore
    shared: bool = True
    notified: int = 0
    reading: asyncio.Event | None = None  # set: a read waits for it (a slow query)

    async def paused_tasks(self) -> set[str]:
        read = {name for name, s in (await self.store.task_states()).items() if s.paused}
        if self.reading is not None:
            await self.reading.wait()
        return read

    async def notify(self, payload: str = "") -> None:
        self.notified += 1


@dataclass
class Node:
    pauses: Pauses
    timing: Timing
    said: list[tuple[TaskChange, str]]
    channel: Channel
    tasks: Tasks


def node(store: MemoryStore, *, shared: bool = True, tasks: Tasks | None = None) -> Node:
    timing, said, channel = Timing(), [], Channel(store, shared=shared)
    tasks = tasks or Tasks()
    pauses = Pauses(
        store,
        timing,
        tasks,
        publish=lambda kind, name: said.append((kind, name)),
        fleet=channel,
    )
    return Node(pauses, timing, said, channel, tasks)


async def test_a_pause_is_stored_timed_announced_and_said() -> None:
    store = MemoryStore()
    here = node(store)
    await here.pauses.pause("a")
    assert (await store.task_states())["a"].paused
    assert here.timing.told == [("a", True)]
    assert here.channel.notified == 1
    assert here.said == [("task.paused", "a")]
    assert here.pauses.is_paused("a") and here.pauses.names == {"a"}
    assert here.pauses.count == 1

    await here.pauses.resume("a")
    assert not (await store.task_states())["a"].paused
    assert here.timing.told == [("a", True), ("a", False)]
    assert here.said == [("task.paused", "a"), ("task.resumed", "a")]
    assert not here.pauses.is_paused("a") and here.pauses.count == 0


async def test_pausing_a_paused_task_says_nothing_more() -> None:
    here = node(MemoryStore())
    await here.pauses.pause("a")
    await here.pauses.pause("a")
    assert here.said == [("task.paused", "a")]
    assert here.timing.told == [("a", True)]


async def test_an_unknown_task_is_refused_and_nothing_is_stored() -> None:
    store = MemoryStore()
    here = node(store)
    with pytest.raises(TaskNotFound, match="'nope'"):
        await here.pauses.pause("nope")
    assert await store.task_states() == {}
    assert here.said == [] and here.timing.told == [] and here.channel.notified == 0


async def test_a_pause_the_store_cannot_keep_changes_nothing() -> None:
    store = MemoryStore(unavailable=True)
    here = node(store)
    with pytest.raises(StoreUnavailable):
        await here.pauses.pause("a")
    assert not here.pauses.is_paused("a")
    assert here.said == [] and here.timing.told == []


async def test_a_start_loads_the_stored_pauses_without_saying_them_again() -> None:
    store = MemoryStore()
    await store.save_task_state("a", paused=True)
    await store.save_task_state("b", paused=False)
    await store.save_task_state("gone", paused=True)  # no longer configured here
    here = node(store)
    await here.pauses.load()
    assert here.pauses.names == {"a", "gone"}
    assert sorted(here.timing.told) == [("a", True), ("gone", True)]
    assert here.said == []


async def test_a_pause_made_on_another_node_is_followed_and_said_here() -> None:
    store = MemoryStore()
    there, here = node(store), node(store)
    await there.pauses.pause("a")
    await here.pauses.sync()
    assert here.pauses.is_paused("a")
    assert here.timing.told == [("a", True)]
    assert here.said == [("task.paused", "a")]
    await here.pauses.sync()  # already followed: said once
    assert here.said == [("task.paused", "a")]

    await there.pauses.resume("a")
    await here.pauses.sync()
    assert not here.pauses.is_paused("a")
    assert here.said == [("task.paused", "a"), ("task.resumed", "a")]
    assert here.timing.told == [("a", True), ("a", False)]
    # and the node that made the changes does not hear them back
    await there.pauses.sync()
    assert there.said == [("task.paused", "a"), ("task.resumed", "a")]


async def test_a_task_this_node_does_not_define_is_left_to_the_others() -> None:
    store = MemoryStore()
    there = node(store, tasks=Tasks({"a", "only-there"}))
    here = node(store)
    await there.pauses.pause("only-there")
    await here.pauses.sync()
    assert not here.pauses.is_paused("only-there") and here.said == []
    here.tasks.names.add("only-there")  # a reload defines it here too
    await here.pauses.sync()
    assert here.pauses.is_paused("only-there")
    assert here.said == [("task.paused", "only-there")]


async def test_a_read_older_than_a_change_made_here_is_not_followed() -> None:
    """The poll read the flags, then a pause was made here before it compared them:
    the read must not undo the pause (the next poll reads it)."""
    store = MemoryStore()
    here = node(store)
    here.channel.reading = asyncio.Event()
    polling = asyncio.create_task(here.pauses.sync())
    await asyncio.sleep(0.01)  # the read has happened, its answer is held back
    await here.pauses.pause("a")
    here.channel.reading.set()
    await polling
    assert here.pauses.is_paused("a")
    assert here.said == [("task.paused", "a")]
    assert here.timing.told == [("a", True)]


async def test_a_lone_node_neither_announces_nor_polls() -> None:
    store = MemoryStore()
    alone = node(store, shared=False)
    await alone.pauses.pause("a")
    assert alone.channel.notified == 0
    await store.save_task_state("b", paused=True)  # as no other node could on SQLite
    await alone.pauses.sync()
    assert not alone.pauses.is_paused("b")


async def test_with_the_scheduler_a_pause_outlives_a_restart_and_a_resume_does_not_catch_up() -> (
    None
):
    from datetime import timedelta

    from dispatch_doubles import FakeClock  # type: ignore[import-not-found]
    from test_scheduler_service import (  # type: ignore[import-not-found]
        HOURLY,
        FakeDispatcher,
        FakeStore,
        T,
        tasks,
    )

    from cronwarden.scheduler.service import SchedulerService

    defs = tasks(HOURLY)
    store = FakeStore(anchors={"a": T - timedelta(hours=3)})
    clock = FakeClock(at=T)

    async def life() -> tuple[Pauses, SchedulerService, FakeDispatcher]:
        dispatcher = FakeDispatcher(defs, store)
        scheduler = SchedulerService(dispatcher, store, clock)  # type: ignore[arg-type]
        pauses = Pauses(store, scheduler, Tasks({"a"}), publish=lambda kind, name: None)
        await pauses.load()
        await scheduler.start(defs)
        await scheduler.wait_inflight()
        return pauses, scheduler, dispatcher

    pauses, scheduler, dispatcher = await life()
    assert [f[2] for f in dispatcher.fired] == ["catch_up"]  # not paused yet
    await pauses.pause("a")
    assert scheduler.next_fire_time("a") is None
    scheduler.shutdown()

    pauses, scheduler, dispatcher = await life()  # a restart
    assert pauses.is_paused("a") and scheduler.next_fire_time("a") is None
    assert dispatcher.fired == []  # no catch-up for a paused task
    clock.at = T + timedelta(hours=3)
    await pauses.resume("a")
    await scheduler.wait_inflight()
    assert dispatcher.fired == []  # nor for the hours it was paused
    assert scheduler.next_fire_time("a") == T.replace(hour=16, minute=0, second=0)
    scheduler.shutdown()
