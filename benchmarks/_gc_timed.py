"""cronwarden's CLI with each full collection of Python's cyclic garbage collector timed
(for a benchmark to count those that fall inside the stretch it measures).

    python benchmarks/_gc_timed.py OUT.jsonl serve -c CONFIG

Each full collection (generation 2) appends a line to OUT.jsonl as it ends:
``{"at": <wall-clock end, s>, "ms": <its duration>, "collected": <objects freed>}``.
A full collection blocks the event loop for its whole length; the younger ones are
not written (a minute of runs makes thousands, each well under a millisecond).
"""

from __future__ import annotations

import gc
import json
import sys
import time
from typing import Any


def main() -> None:
    out = open(sys.argv.pop(1), "a", buffering=1)  # noqa: SIM115 - open for the daemon's life
    began = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        elif info["generation"] == 2:
            ms = (time.perf_counter() - began[0]) * 1000
            line = {"at": time.time(), "ms": round(ms, 2), "collected": info["collected"]}
            out.write(json.dumps(line) + "\n")

    gc.callbacks.append(timed)
    sys.argv[0] = "cronwarden"
    from cronwarden.cli import main as cronwarden

    cronwarden()


if __name__ == "__main__":
    main()
