"""The daemon's heap: what start-up made stays out of the collector's way, malloc keeps
few heaps, and what is freed later goes back to the system.

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

import asyncio
import ctypes
import gc
import os

from cronwarden.support.libc import libc_function

# Full collections a tenth as often as Python's default (the oldest generation's
# threshold: 100 collections of the middle one, not 10).  After the freeze a full
# collection walks every object made since, and in a burst that is every run in
# flight: in a 10,000-task minute the default made nine full collections, each 20-115
# ms with the loop blocked and nothing to collect, and they were /health's slowest
# answers (p99 51-119 ms in seven passes; 39-99, median 60, in seven with this;
# BENCHMARKS.md).  What it costs: cyclic garbage that outlives the younger
# generations waits longer for its collection.
OLDEST_GENERATION_THRESHOLD = 100


def freeze_start_up_objects() -> int:
    """Collect, then move every object alive now out of the collector's sight, and
    make full collections rarer; returns how many are frozen.  Called once the daemon
    is ready (the collection takes a fraction of a second with 10,000 tasks, not
    counted in the time to READY)."""
    gc.collect()
    gc.freeze()
    youngest, middle, _ = gc.get_threshold()
    gc.set_threshold(youngest, middle, OLDEST_GENERATION_THRESHOLD)
    return gc.get_freeze_count()


# How many heaps malloc may keep.  glibc gives each new thread that allocates a heap of
# its own, up to 8 per core (16 here): the daemon's threads (the store's connections,
# the thread pool) had 15 besides the main one, ~45 MB resident between them, and what
# they free stays scattered over all of them.  Over a 30-minute soak malloc's free
# memory inside them grew 46.7 -> 69 MB while what was in use stayed at 36-40 MB.
# With two, RSS stayed flat (+0.8 MB/h) and 35 MB lower, and the daemon kept up no
# worse: more heaps buy speed only where threads allocate at once, and Python's take
# turns under the GIL (BENCHMARKS.md).  An operator's MALLOC_ARENA_MAX wins.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def share_malloc_arenas(count: int = MALLOC_ARENAS) -> bool:
    """Bound glibc's heaps to ``count``; True if done.  Called before the daemon starts
    any thread: a heap made before stays.  With another C library, nothing."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, count))


# How often freed memory goes back to the system.  glibc keeps what the daemon frees
# inside its heaps, one per thread that allocates (the store's threads among them), and
# a heap gives back only what lies at its top: a 25-minute soak ended with 46 MB free in
# them, grown from 32 MB after its warm-up, while what was in use rose 4 MB.
TRIM_EVERY = 60.0  # s


async def give_back_free_memory(every: float = TRIM_EVERY) -> None:
    """Every ``every`` seconds, glibc's ``malloc_trim(0)`` on a thread: the free pages
    inside its heaps go back to the system.  With another C library, nothing."""
    await asyncio.sleep(every)
    trim = libc_function("malloc_trim")
    if trim is None:
        return
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    while True:
        await asyncio.to_thread(trim, 0)
        await asyncio.sleep(every)
