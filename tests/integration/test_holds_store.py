"""Named locks and pools in the database (store/holds.py), on a SQLite file and on
PostgreSQL: all or none, a run's end frees its seats, and takers racing for the last
seat never both get it."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from cronwarden.model import Run, Status, utcnow
from cronwarden.store import Store
from cronwarden.store.holds import SqlHolds

RUNS = Run.__table__  # type: ignore[attr-defined]


async def running(store: Store, *ids: str, task: str = "t", node: str = "n1") -> None:
    async with store.engine.begin() as conn:
        for run_id in ids:
            await conn.execute(
                sa.insert(RUNS).values(
                    id=run_id,
                    task_name=task,
                    status=Status.RUNNING,
                    triggered_by="api",
                    created_at=utcnow(),
                    node=node,
                    task_hash="h",
                    params={},
                )
            )


async def end(store: Store, run_id: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(status=Status.ENDED))


async def test_a_pool_seats_its_size_and_a_run_s_end_frees_its_seat(store: Store) -> None:
    holds = SqlHolds(store.engine)
    await running(store, "r1", "r2", "r3", "r4")
    pool = {"pool:two": 2}
    assert await holds.take("r1", pool) is None
    assert await holds.take("r2", pool) is None
    full = await holds.take("r3", pool)
    assert full is not None and {h.run_id for h in full} == {"r1", "r2"}
    assert {h.task_name for h in full} == {"t"} and {h.node for h in full} == {"n1"}
    await end(store, "r1")  # its end frees the seat; nothing is released by hand
    assert await holds.take("r3", pool) is None
    assert await holds.take("r4", pool) is not None
    assert sorted(h.run_id for h in await holds.holders()) == ["r2", "r3"]


async def test_all_or_none(store: Store) -> None:
    """A run needing two locks takes neither while one is held: no run ever holds one
    lock while it waits for another."""
    holds = SqlHolds(store.engine)
    await running(store, "a", "b", "c")
    assert await holds.take("a", {"lock:x": 1}) is None
    held = await holds.take("b", {"lock:y": 1, "lock:x": 1})
    assert held is not None and [h.run_id for h in held] == ["a"]
    assert await holds.take("c", {"lock:y": 1}) is None  # b did not keep y
    await end(store, "a")
    await end(store, "c")
    assert await holds.take("b", {"lock:y": 1, "lock:x": 1}) is None
    assert sorted(h.name for h in await holds.holders()) == ["lock:x", "lock:y"]


async def test_a_hold_whose_run_is_gone_counts_no_more(store: Store) -> None:
    holds = SqlHolds(store.engine)
    await running(store, "old", "new")
    assert await holds.take("old", {"lock:x": 1}) is None
    async with store.engine.begin() as conn:  # retention deleted the ended run's row
        await conn.execute(sa.delete(RUNS).where(RUNS.c.id == "old"))
    assert await holds.take("new", {"lock:x": 1}) is None


async def test_takers_racing_for_the_last_seat_never_both_get_it(store: Store) -> None:
    holds = SqlHolds(store.engine)
    ids = [f"r{i}" for i in range(12)]
    await running(store, *ids)
    for _ in range(5):
        results = await asyncio.gather(*(holds.take(i, {"pool:p": 3}) for i in ids))
        winners = [i for i, result in zip(ids, results, strict=True) if result is None]
        assert len(winners) <= 3, winners
        assert len(await holds.holders(["pool:p"])) == len(winners)
        for winner in winners:
            await end(store, winner)
        ids = [i for i in ids if i not in winners]
        if not ids:
            break
