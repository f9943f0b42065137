"""At most a few runs between their turn and their spawn: a 10,000-task minute ran out
of file descriptors when every run due was prepared (pipes and log open) at once and
queued behind the spawner's forks."""

from __future__ import annotations

import asyncio

from cronwarden.runners.pacing import SpawnPacer


async def test_only_a_few_starts_are_under_way_and_each_started_run_lets_one_more_in() -> None:
    pacer = SpawnPacer(under_way=3)
    waiting = [asyncio.ensure_future(pacer.turn()) for _ in range(10)]
    await asyncio.sleep(0)
    given = [w for w in waiting if w.done()]
    assert len(given) == 3
    first = given[0].result()
    first()
    first()  # twice is once
    await asyncio.sleep(0)
    assert sum(w.done() for w in waiting) == 4
    assert waiting[3].done()  # in the order they came


async def test_a_run_stopped_while_waiting_gives_its_place_to_the_next() -> None:
    pacer = SpawnPacer(under_way=1)
    running = await pacer.turn()
    stopped = asyncio.ensure_future(pacer.turn())
    next_one = asyncio.ensure_future(pacer.turn())
    await asyncio.sleep(0)
    stopped.cancel()
    running()
    await asyncio.sleep(0)
    assert next_one.done() and stopped.cancelled()
    next_one.result()()
    assert (await pacer.turn()) is not None  # the place came back
