"""cronwarden's CLI under cProfile, switched on and off by signals (for a benchmark to
profile only the stretch it measures).

    python benchmarks/_profiled.py OUT.prof serve -c CONFIG

SIGUSR1 starts profiling the daemon's main thread (its event loop: every spawn, commit
and request happens there); SIGUSR2 stops it and writes the stats to OUT.prof (read
them with ``python -m pstats OUT.prof`` or snakeviz).  The profiler slows the daemon
down: figures of a profiled run are not the benchmark's figures.
"""

from __future__ import annotations

import cProfile
import signal
import sys
from types import FrameType


def main() -> None:
    out = sys.argv.pop(1)
    profiler = cProfile.Profile()

    def start(_signum: int, _frame: FrameType | None) -> None:
        profiler.enable()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv[0] = "cronwarden"
    from cronwarden.cli import main as cronwarden

    cronwarden()


if __name__ == "__main__":
    main()
