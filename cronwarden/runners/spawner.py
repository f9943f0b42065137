"""The one thread that starts runs' processes, off the event loop.

While a vfork child waits for a core, the thread that forked it waits with it:
0.09 ms a spawn on an idle machine, 0.54 ms in a busy daemon, and up to 0.4 s at a
10,000-task minute, when thousands of new processes queue for two cores
(BENCHMARKS.md).  On the loop's thread that wait held up every fire, output and
request, /health among them; ``fork_exec`` releases the GIL, so here the loop goes on.

The orphan sweeps run on the same thread (runners/containment.py): a sweep and a start
never overlap, so no sweep meets a child before it is registered as the daemon's own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_thread: ThreadPoolExecutor | None = None


def on_spawner(work: Callable[[], T]) -> asyncio.Future[T]:
    """``work`` on the spawner's thread, after every start and sweep asked before it."""
    global _thread
    with _lock:  # made on first use: a process forked before (a test's zygote) has none
        if _thread is None:
            _thread = ThreadPoolExecutor(1, thread_name_prefix="cronwarden-spawner")
    return asyncio.get_running_loop().run_in_executor(_thread, work)
