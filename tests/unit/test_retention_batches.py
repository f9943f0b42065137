"""Retention's batches are sized by time: as many rows as one short delete takes, so a
long history goes in few commits while a fire never waits long for SQLite's lock; and
no batch is begun just before a fire."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from dispatch_doubles import FakeClock  # type: ignore[import-not-found]

from cronwarden.retention import (
    BATCH,
    BATCH_SECONDS,
    FIRE_MOMENT,
    MAX_BATCH,
    STEP_ASIDE,
    STEP_ASIDE_EVERY,
    Retention,
    next_batch,
)
from cronwarden.store.engine import open_engine
from cronwarden.store.pruning import RetentionQueries


def test_a_fast_delete_doubles_the_batch_at_most() -> None:
    assert next_batch(256, BATCH_SECONDS / 100) == 512
    assert next_batch(256, BATCH_SECONDS * 0.4) == 512


def test_a_slow_delete_halves_the_batch_at_most() -> None:
    assert next_batch(1024, BATCH_SECONDS * 10) == 512
    assert next_batch(1024, BATCH_SECONDS * 1.5) == 512


def test_a_delete_near_its_time_keeps_the_batch() -> None:
    assert next_batch(512, BATCH_SECONDS * 0.9) == 512
    assert next_batch(512, BATCH_SECONDS * 1.3) == 512


def test_a_delete_in_70_percent_of_its_time_doubles_the_batch() -> None:
    """Rounded down, a batch of 256 that took 30 ms of 40 stayed at 256 for a whole
    pass: its fixed costs were never spread over more rows."""
    assert next_batch(256, BATCH_SECONDS * 0.7) == 512


def test_every_size_is_a_power_of_two() -> None:
    """Each size is a DELETE of its own that the driver keeps prepared: a handful of
    sizes, not one per batch."""
    sizes = {BATCH}
    for took in (0.0, 0.001, 0.007, 0.013, 0.019, 0.021, 0.033, 0.5, 0.011, 0.0):
        sizes.add(next_batch(max(sizes), took))
        sizes.add(next_batch(min(sizes), took))
    assert all(size & (size - 1) == 0 for size in sizes)


def test_batches_stay_within_their_bounds() -> None:
    size = BATCH
    for _ in range(30):
        size = next_batch(size, 0.0)  # a delete too fast to measure
    assert size == MAX_BATCH
    for _ in range(30):
        size = next_batch(size, 60.0)  # a store that crawls
    assert size == BATCH  # a busy daemon's slow deletes do not shrink it further


def test_a_batch_never_shrinks_below_the_first() -> None:
    assert next_batch(BATCH, 60.0) == BATCH


class _Fires:
    """The scheduler's next instant, as the test sets it."""

    def __init__(self) -> None:
        self.next: datetime | None = None

    def __call__(self) -> datetime | None:
        return self.next


def _retention(clock: FakeClock, fires: _Fires) -> Retention:
    return Retention(
        store=SimpleNamespace(pruning=RetentionQueries(open_engine("sqlite+aiosqlite://"))),  # type: ignore[arg-type]
        config=None,  # type: ignore[arg-type]  # _step_aside uses neither
        logs_dir=Path("/nonexistent"),
        clock=clock,
        next_fire=fires,
    )


async def test_a_batch_is_not_begun_just_before_a_fire_but_once_it_has_had_its_moment() -> None:
    """A delete holds SQLite's write lock, and a fire's start waits behind it (a
    per-second task's p99 went from 28 to 66 ms in a pass of 50 ms batches)."""
    clock, fires = FakeClock(), _Fires()
    retention = _retention(clock, fires)
    fires.next = clock.now() + STEP_ASIDE / 2
    stepping = asyncio.ensure_future(retention._step_aside())
    await asyncio.sleep(0)
    clock.advance(STEP_ASIDE / 2)  # the fire's instant
    await asyncio.sleep(0)
    assert not stepping.done()
    clock.advance(FIRE_MOMENT)
    await asyncio.sleep(0)
    assert stepping.done()


async def test_a_batch_goes_at_once_when_no_fire_is_near() -> None:
    clock, fires = FakeClock(), _Fires()
    retention = _retention(clock, fires)
    for fires.next in (None, clock.now() + STEP_ASIDE * 2, clock.now() - timedelta(seconds=1)):
        await asyncio.wait_for(retention._step_aside(), timeout=5)
    assert clock.armed == []


async def test_fires_every_few_ms_let_the_pass_step_aside_at_most_twice_a_second() -> None:
    """10,000 tasks spread over a minute fire every 6 ms: waiting before every batch
    would slow the pass fourfold."""
    clock, fires = FakeClock(), _Fires()
    retention = _retention(clock, fires)
    waits = 0
    began = clock.now()
    while clock.now() - began < timedelta(seconds=2):
        fires.next = clock.now() + timedelta(milliseconds=6)
        stepping = asyncio.ensure_future(retention._step_aside())
        await asyncio.sleep(0)
        if not stepping.done():
            waits += 1
            clock.advance(timedelta(milliseconds=6) + FIRE_MOMENT)
            await asyncio.sleep(0)
            assert stepping.done()
        clock.advance(timedelta(milliseconds=50))  # the batch's delete
    assert waits == 2 / STEP_ASIDE_EVERY.total_seconds()
