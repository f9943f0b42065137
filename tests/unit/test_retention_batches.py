"""Retention's batches are sized by time: as many rows as one short delete takes, so a
long history goes in few commits while a fire never waits long for SQLite's lock."""

from __future__ import annotations

from cronwarden.retention import BATCH, BATCH_SECONDS, MAX_BATCH, next_batch


def test_a_fast_delete_doubles_the_batch_at_most() -> None:
    assert next_batch(256, BATCH_SECONDS / 100) == 512
    assert next_batch(256, BATCH_SECONDS * 0.4) == 512


def test_a_slow_delete_halves_the_batch_at_most() -> None:
    assert next_batch(1024, BATCH_SECONDS * 10) == 512
    assert next_batch(1024, BATCH_SECONDS * 1.2) == 512


def test_a_delete_near_its_time_keeps_the_batch() -> None:
    assert next_batch(512, BATCH_SECONDS * 0.9) == 512


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
