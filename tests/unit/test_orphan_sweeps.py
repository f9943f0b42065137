"""Orphan sweeps: runs that end together share one listing of the daemon's children
(a sweep for each end was a fifth of the loop's time in a 10,000-task minute), and no
sweep meets a child that is being started, whatever thread starts it (a child seen
before it is registered would be reaped as an orphan, and its run's exit status lost).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

from cronwarden.host.subreaper import Orphan, Orphanage, Reaped, disown_child, start_own_child
from cronwarden.runners.containment import Containment


class CountingOrphanage(Orphanage):
    """Every run has one orphan; the first sweep waits until the test lets it go."""

    def __init__(self, runs: int) -> None:
        super().__init__()
        self.runs = runs
        self.sweeps = 0
        self.first_started = threading.Event()
        self.let_go = threading.Event()

    def sweep(self) -> tuple[list[Orphan], list[Reaped]]:
        self.sweeps += 1
        if self.sweeps == 1:
            self.first_started.set()
            self.let_go.wait(30)
        return [Orphan(1000 + i, f"run-{i}") for i in range(self.runs)], []


def test_runs_that_end_together_share_a_sweep() -> None:
    orphanage = CountingOrphanage(runs=200)
    containment = Containment(home=None, orphanage=orphanage)

    async def ends() -> list[list[int]]:
        asking = [asyncio.ensure_future(containment.orphans_of(f"run-{i}")) for i in range(200)]
        await asyncio.sleep(0)  # every end has asked
        deadline = time.monotonic() + 30
        while not orphanage.first_started.is_set():
            assert time.monotonic() < deadline, "the sweep never started"
            await asyncio.sleep(0.01)
        orphanage.let_go.set()
        return await asyncio.gather(*asking)

    found = asyncio.run(ends())
    assert found == [[1000 + i] for i in range(200)]
    assert orphanage.sweeps <= 2  # the one under way, and at most one after it


def test_a_sweep_waits_for_a_child_being_started() -> None:
    orphanage = Orphanage()
    inside, finish = threading.Event(), threading.Event()
    swept: list[list[int]] = []

    def start() -> subprocess.Popen[bytes]:
        # In its own session, like a run: a sweep that met it now would call it an orphan.
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
        )
        inside.set()
        finish.wait(30)
        return child

    starting: list[subprocess.Popen[bytes]] = []
    starter = threading.Thread(target=lambda: starting.append(start_own_child(start)))
    starter.start()
    try:
        assert inside.wait(30)
        sweeper = threading.Thread(
            target=lambda: swept.append([o.pid for o in orphanage.sweep()[0]])
        )
        sweeper.start()
        sweeper.join(0.3)
        assert sweeper.is_alive(), "a sweep ran while a child was being started"
        finish.set()
        sweeper.join(30)
        starter.join(30)
        assert swept and starting[0].pid not in swept[0]
    finally:
        finish.set()
        starter.join(30)
        for child in starting:
            child.kill()
            child.wait()
            disown_child(child.pid)
