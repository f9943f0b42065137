"""Runs that end together share one sweep for orphans: a sweep lists every child of the
daemon (thousands while thousands of runs are under way), and one for each run's end
was a fifth of the loop's time in a 10,000-task minute (BENCHMARKS.md)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from cronwarden.host.subreaper import RUN_ID_VARIABLE, Orphan, Orphanage, Reaped
from cronwarden.runners.containment import Containment


class CountingOrphanage(Orphanage):
    """Every run has one orphan; counts the sweeps."""

    def __init__(self, runs: int) -> None:
        super().__init__()
        self.runs = runs
        self.sweeps = 0

    def sweep(self) -> tuple[list[Orphan], list[Reaped]]:
        self.sweeps += 1
        return [Orphan(1000 + i, f"run-{i}") for i in range(self.runs)], []


async def test_runs_that_end_together_share_a_sweep() -> None:
    orphanage = CountingOrphanage(runs=200)
    containment = Containment(home=None, orphanage=orphanage)
    found = await asyncio.gather(*(containment.orphans_of(f"run-{i}") for i in range(200)))
    assert found == [[1000 + i] for i in range(200)]
    assert orphanage.sweeps == 1


async def test_a_run_that_ends_after_a_sweep_gets_a_sweep_of_its_own() -> None:
    # An orphan is made when a process of the run exits: a sweep taken before the run
    # saw its group empty could miss it.
    orphanage = CountingOrphanage(runs=1)
    containment = Containment(home=None, orphanage=orphanage)
    assert await containment.orphans_of("run-0") == [1000]
    assert await containment.orphans_of("run-0") == [1000]
    assert orphanage.sweeps == 2


def test_an_orphan_whose_environment_could_not_be_read_is_attributed_at_a_later_sweep(
    tmp_path: Path,
) -> None:
    """Read while it was between exec's steps, an orphan's environment came back empty;
    remembered as nobody's, the orphan outlived its run (a run whose child escaped by
    setsid ended "success" with it still alive)."""
    proc = tmp_path / "proc"
    main_thread = proc / "self" / "task" / str(os.getpid())
    main_thread.mkdir(parents=True)
    (main_thread / "children").write_text("4321 ")
    (proc / "4321").mkdir()
    (proc / "4321" / "stat").write_bytes(b"4321 (sh) S 1 4321 999999 0 -1 0")
    environ = proc / "4321" / "environ"
    environ.write_bytes(b"")  # mid-exec
    orphanage = Orphanage(proc)
    assert orphanage.sweep() == ([Orphan(4321, None)], [])
    environ.write_bytes(f"PATH=/bin\0{RUN_ID_VARIABLE}=run-1\0".encode())
    assert orphanage.sweep() == ([Orphan(4321, "run-1")], [])
