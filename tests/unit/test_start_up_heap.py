"""What start-up made is kept out of the cyclic collector's walks once the daemon is
ready (cronwarden/support/heap.py); start-up's garbage is collected, not kept; and a
burst of new objects (runs in flight) is not walked by one full collection after
another."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from cronwarden.support.heap import freeze_start_up_objects


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_start_up_objects_are_frozen_and_its_garbage_collected_first(
    collector_restored: None,
) -> None:
    kept = [Node()]
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage
    frozen = freeze_start_up_objects()
    assert frozen == gc.get_freeze_count() > 0
    assert gone() is None  # collected before the freeze, not frozen for good
    assert kept[0].me is kept[0]
    assert not any(obj is kept[0] for obj in gc.get_objects())  # out of the walks


def full_collections_while_holding(count: int) -> int:
    """How many full collections ran while ``count`` small containers were made and
    kept (a burst of runs in flight: their records, handles, coroutines)."""
    full = 0

    def counted(phase: str, info: dict[str, int]) -> None:
        nonlocal full
        if phase == "stop" and info["generation"] == 2:
            full += 1

    gc.callbacks.append(counted)
    try:
        held = [[i] for i in range(count)]
    finally:
        gc.callbacks.remove(counted)
    assert len(held) == count
    return full


def test_a_burst_after_start_up_is_not_walked_again_and_again(collector_restored: None) -> None:
    """With Python's default thresholds, 700,000 new containers after the freeze set
    off a full collection every ~70,000: each walks all of them."""
    gc.collect()
    gc.freeze()
    default = full_collections_while_holding(700_000)
    gc.unfreeze()
    freeze_start_up_objects()
    after_start_up = full_collections_while_holding(700_000)
    assert default >= 5
    assert after_start_up <= 1
