"""The daemon's heap after start-up: what start-up made stays out of the collector's way.

Start-up leaves some 700,000 objects that live as long as the daemon (modules, the
config and its packed task table, the timer's heap, the store's metadata).  Python's
cyclic collector walks every tracked object at each full collection, and the objects a
minute of 10,000 due runs makes (their records, handles, coroutines, rows) trigger
several: each took 2 s on a loaded 2-core machine, 12.5 s of a 64 s minute, the event
loop blocked throughout (benchmarks/minute.py, BENCHMARKS.md).  ``gc.freeze`` moves what
exists now into a permanent generation that collections skip, so a full collection
walks only what came since (the runs in flight).  Garbage is collected first, so no
cycle left by start-up is kept for good.
"""

from __future__ import annotations

import gc


def freeze_start_up_objects() -> int:
    """Collect, then move every object alive now out of the collector's sight; returns
    how many are frozen.  Called once the daemon is ready (the collection takes a
    fraction of a second with 10,000 tasks, not counted in the time to READY)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
