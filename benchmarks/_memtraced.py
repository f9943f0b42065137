"""cronwarden's CLI with its memory accounted for on a signal (for a soak to say where
the memory that grew between two moments is held).

    python benchmarks/_memtraced.py OUT_PREFIX FRAMES serve -c CONFIG

Each SIGUSR1 writes ``OUT_PREFIX.N.json`` (N counts from 0): what glibc's malloc holds
(``mallinfo2``: in use, free inside its heaps, mapped apart), what SQLite holds
(``sqlite3_memory_used``: page caches, statements, FTS5), what pymalloc's arenas
(Python's small objects, mapped apart from malloc) span and use, and, with FRAMES > 0,
what tracemalloc traced, beside a snapshot in ``OUT_PREFIX.N.snap``.  With
FRAMES > 0 the first SIGUSR1 only starts tracemalloc (tracing from the start would
cost the warm-up, which is left out anyway).  Tracing slows the daemon and adds its own
memory: a traced run's figures are not the soak's figures.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import re
import signal
import sys
import tempfile
import tracemalloc
from pathlib import Path
from types import FrameType


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _memory() -> dict[str, int]:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    figures = {
        "malloc_in_use": info.uordblks,
        "malloc_free": info.fordblks,
        "malloc_mapped": info.hblkhd,
    }
    # The library the sqlite3 module loaded: the same process-wide counters.
    sqlite = ctypes.CDLL(ctypes.util.find_library("sqlite3"))
    sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    figures["sqlite"] = sqlite.sqlite3_memory_used()
    figures.update(_pymalloc())
    if tracemalloc.is_tracing():
        figures["traced"] = tracemalloc.get_traced_memory()[0]
        figures["tracemalloc_itself"] = tracemalloc.get_tracemalloc_memory()
    return figures


def _pymalloc() -> dict[str, int]:
    """pymalloc's arenas (Python's small objects; mapped apart from malloc's heaps): the
    bytes its arenas span and the bytes in blocks in use, from its own statistics,
    which it can only print to the process's stderr."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode()

    def figure(label: str) -> int:
        found = re.search(rf"^{re.escape(label)}\s*=\s*([\d,]+)", text, re.MULTILINE)
        return int(found.group(1).replace(",", "")) if found else -1

    return {"pymalloc_in_use": figure("# bytes in allocated blocks"), "pymalloc": figure("Total")}


def main() -> None:
    prefix = sys.argv.pop(1)
    frames = int(sys.argv.pop(1))
    taken = 0

    def account(_signum: int, _frame: FrameType | None) -> None:
        nonlocal taken
        if frames and not tracemalloc.is_tracing():
            tracemalloc.start(frames)
            return
        if tracemalloc.is_tracing():
            snap = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            snap.dump(f"{prefix}.{taken}.snap")
        Path(f"{prefix}.{taken}.json").write_text(json.dumps(_memory()))
        taken += 1

    signal.signal(signal.SIGUSR1, account)
    sys.argv[0] = "cronwarden"
    from cronwarden.cli import main as cronwarden

    cronwarden()


if __name__ == "__main__":
    main()
