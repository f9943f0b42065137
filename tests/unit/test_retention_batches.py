"""Retention's batches are sized by time: as many rows as one short delete takes, so a
long history goes in few commits while a fire never waits long for SQLite's lock."""

from __future__ import annotations

from cronwarden.retention import BATCH, BATCH_SECONDS, MAX_BATCH, next_batch


def test_a_fast_delete_doubles_the_batch_at_most() -> None:
    assert next_batch(200, BATCH_SECONDS / 100) == 400
    assert next_batch(200, BATCH_SECONDS * 0.8) == 250


def test_a_slow_delete_halves_the_batch_at_most() -> None:
    assert next_batch(400, BATCH_SECONDS * 10) == 200
    assert next_batch(400, BATCH_SECONDS * 1.6) == 250


def test_batches_stay_within_their_bounds() -> None:
    size = BATCH
    for _ in range(30):
        size = next_batch(size, 0.0)  # a delete too fast to measure
    assert size == MAX_BATCH
    for _ in range(30):
        size = next_batch(size, 60.0)  # a store that crawls
    assert size == BATCH // 10


def test_a_batch_is_never_empty() -> None:
    assert next_batch(1, 60.0) >= 1
