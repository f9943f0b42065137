"""cronwarden's CLI with what blocks its event loop timed: each full collection of
Python's cyclic garbage collector, and each single step of the loop (one callback, or
one stretch of a task between two awaits) that takes longer than STEP_MS (for a
benchmark to count those inside the stretch it measures).

    python benchmarks/_stalls_timed.py OUT.jsonl serve -c CONFIG

Each appends a line to OUT.jsonl as it ends, with its wall-clock end and duration:
``{"kind": "gc", "at": s, "ms": ms, "collected": n}`` for a full collection
(generation 2; the younger ones are thousands a minute, each well under a
millisecond), ``{"kind": "step", "at": s, "ms": ms, "what": name}`` for a long step,
named by its callback or its task's coroutine.  A step's time includes any
collection that fell inside it.  Timing every step costs two clock reads a callback.
"""

from __future__ import annotations

import asyncio.events
import gc
import json
import sys
import time
from typing import IO, Any

STEP_MS = 20.0


def _time_collections(out: IO[str]) -> None:
    began = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        elif info["generation"] == 2:
            ms = (time.perf_counter() - began[0]) * 1000
            line = {"kind": "gc", "at": time.time(), "ms": round(ms, 2)}
            out.write(json.dumps({**line, "collected": info["collected"]}) + "\n")

    gc.callbacks.append(timed)


def _named(callback: Any) -> str:
    """A task's step by its coroutine; any other callback by its qualified name."""
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        return f"task {task.get_coro().__qualname__}"  # type: ignore[union-attr]
    return str(getattr(callback, "__qualname__", callback))


def _time_steps(out: IO[str]) -> None:
    run = asyncio.events.Handle._run

    def timed(handle: asyncio.events.Handle) -> None:
        began = time.perf_counter()
        run(handle)
        ms = (time.perf_counter() - began) * 1000
        if ms > STEP_MS:
            what = _named(handle._callback)  # type: ignore[attr-defined]
            line = {"kind": "step", "at": time.time(), "ms": round(ms, 2), "what": what}
            out.write(json.dumps(line) + "\n")

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


def main() -> None:
    out = open(sys.argv.pop(1), "a", buffering=1)  # noqa: SIM115 - open for the daemon's life
    _time_collections(out)
    _time_steps(out)
    sys.argv[0] = "cronwarden"
    from cronwarden.cli import main as cronwarden

    cronwarden()


if __name__ == "__main__":
    main()
