"""What start-up made is kept out of the cyclic collector's walks once the daemon is
ready (cronwarden/support/heap.py); start-up's garbage is collected, not kept."""

from __future__ import annotations

import gc
import weakref

from cronwarden.support.heap import freeze_start_up_objects


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_start_up_objects_are_frozen_and_its_garbage_collected_first() -> None:
    kept = [Node()]
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage
    try:
        frozen = freeze_start_up_objects()
        assert frozen == gc.get_freeze_count() > 0
        assert gone() is None  # collected before the freeze, not frozen for good
        assert kept[0].me is kept[0]
        assert not any(obj is kept[0] for obj in gc.get_objects())  # out of the walks
    finally:
        gc.unfreeze()
