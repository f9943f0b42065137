"""No process left behind: a run's end is the end of every process it started.

Chosen once per host at start-up and logged: each run in a cgroup v2 of its own under
the daemon's (``[daemon] run_cgroups``; host/cgroups.py), and in every case the daemon
as child subreaper (host/subreaper.py), which finds what escaped a run's process group
(setsid, a double fork) once its parent is gone, and reaps every orphan.

When a run's main process has exited (or was stopped), what is left of it (its process
group, its orphans, its cgroup) gets the task's stop_signal, then SIGKILL after
kill_grace; the run is recorded as ended once nothing of it is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog

from cronwarden.config import DEFAULT_PATH, DaemonConfig, RunLimits
from cronwarden.errors import CgroupUnavailable
from cronwarden.host.cgroups import (
    CgroupEvents,
    CgroupHome,
    RunCgroup,
    open_home,
)
from cronwarden.host.subreaper import Orphan, Orphanage, become_subreaper
from cronwarden.model import EndReason
from cronwarden.runners.bounds import NO_BOUNDS, BoundPlan, bound_error, plan_bounds
from cronwarden.runners.cost import RunCost
from cronwarden.runners.outcome import Outcome

log = structlog.get_logger(__name__)

POLL = 0.02  # while waiting for leftovers to go (no event says "the group emptied")
GIVE_UP_AFTER_KILL = 10.0  # a process stuck in the kernel (D state) outlives SIGKILL


class Containment:
    """The host's way of keeping runs' processes together, for the daemon's life."""

    def __init__(self, home: CgroupHome | None, orphanage: Orphanage | None) -> None:
        self.home = home
        self.orphanage = orphanage
        self._leftover_cost: dict[str, list[RunCost]] = {}
        self._sweep_pending: asyncio.Future[list[Orphan]] | None = None
        self._prlimit = shutil.which("prlimit", path=DEFAULT_PATH)

    @classmethod
    def choose(cls, daemon: DaemonConfig) -> Containment:
        """What this host allows; raises CgroupUnavailable for ``always`` without one."""
        orphanage = Orphanage() if become_subreaper() else None
        home = None
        if daemon.run_cgroups != "never":
            try:
                home = open_home(daemon.data_dir, required_delegation=daemon.run_cgroups == "auto")
            except CgroupUnavailable as exc:
                if daemon.run_cgroups == "always":
                    raise
                log.info("runs.no_cgroups", reason=str(exc))
        containment = cls(home, orphanage)
        log.info("runs.contained", how=containment.describe())
        return containment

    def close(self) -> None:
        """At the daemon's stop: the runs' cgroup parent goes once no run is in it."""
        if self.home is not None:
            with contextlib.suppress(OSError):  # a run adopted by the next life is in it
                self.home.runs.rmdir()

    def describe(self) -> str:
        ways = []
        if self.home is not None:
            controllers = ", ".join(sorted(self.home.controllers)) or "no controllers"
            ways.append(f"a cgroup per run under {self.home.runs} ({controllers})")
        if self.orphanage is not None:
            ways.append("the daemon as child subreaper")
        return " and ".join(ways) or "process groups only (the kernel refused a subreaper)"

    @property
    def controllers(self) -> frozenset[str]:
        return self.home.controllers if self.home is not None else frozenset()

    def plan(self, limits: RunLimits | None, uid: int) -> BoundPlan:
        return plan_bounds(limits, self.controllers, uid, self._prlimit)

    def enter(self, run_id: str, plan: BoundPlan) -> ContainedRun:
        """A new run's place, made before its process is spawned."""
        cgroup = self.home.cgroup(run_id) if self.home is not None else None
        if cgroup is not None:
            try:
                cgroup.create(plan.cgroup_files)
            except OSError as exc:
                log.warning("run.no_cgroup", run_id=run_id, error=str(exc))
                cgroup = None
        return ContainedRun(self, run_id, plan, cgroup)

    def rejoin(self, run_id: str) -> ContainedRun:
        """A run re-adopted from a previous daemon life, in the cgroup it was given."""
        cgroup = self.home.cgroup(run_id) if self.home is not None else None
        if cgroup is not None and not cgroup.exists():
            cgroup = None
        return ContainedRun(self, run_id, NO_BOUNDS, cgroup)

    def child_exited(self) -> None:
        """SIGCHLD: reap orphans soon (once for a burst of exits)."""
        if self.orphanage is not None:
            self._next_sweep()

    def _next_sweep(self) -> asyncio.Future[list[Orphan]]:
        """The sweep that starts after this call, shared by everyone who asks before it
        starts: with thousands of runs under way the daemon has thousands of children
        to list, and a sweep for each run's end was a fifth of the loop's time in a
        10,000-task minute (BENCHMARKS.md)."""
        if self._sweep_pending is None:
            loop = asyncio.get_running_loop()
            self._sweep_pending = loop.create_future()
            loop.call_soon(self._sweep_for_waiters)
        return self._sweep_pending

    def _sweep_for_waiters(self) -> None:
        pending, self._sweep_pending = self._sweep_pending, None
        if pending is not None and not pending.done():
            pending.set_result(self._sweep())

    def _sweep(self) -> list[Orphan]:
        """Reap the orphans that exited (counting their cost to their run); those alive."""
        if self.orphanage is None:
            return []
        alive, reaped = self.orphanage.sweep()
        for ended in reaped:
            if ended.run_id is not None:
                self._leftover_cost.setdefault(ended.run_id, []).append(RunCost.of(ended.usage))
        return alive

    async def orphans_of(self, run_id: str) -> list[int]:
        """The run's orphans alive at a sweep that started after this call."""
        if self.orphanage is None:
            return []
        alive = await asyncio.shield(self._next_sweep())
        return [orphan.pid for orphan in alive if orphan.run_id == run_id]

    def orphans_now(self, run_id: str) -> list[int]:
        return [orphan.pid for orphan in self._sweep() if orphan.run_id == run_id]

    def take_leftover_cost(self, run_id: str) -> list[RunCost]:
        return self._leftover_cost.pop(run_id, [])


@dataclass
class ContainedRun:
    """One run's processes: what is put in front of its command, where it is placed
    once spawned, and what its end waits for."""

    containment: Containment
    run_id: str
    plan: BoundPlan
    cgroup: RunCgroup | None

    def placement(self) -> Callable[[int], None] | None:
        """What places the process before its command runs (None: nothing to do)."""
        return self.cgroup.add if self.cgroup is not None else None

    async def end(
        self,
        signal_group: Callable[[int], None],
        group_alive: Callable[[], bool],
        stop_signal: int,
        kill_grace: float,
    ) -> None:
        """Wait until nothing of the run is left: stop_signal, then SIGKILL after
        kill_grace, to its group, its orphans (each as it turns up) and its cgroup."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + kill_grace
        sent: dict[int, int] = {}  # orphan pid -> the last signal it was sent
        group_signal: int | None = None
        while True:
            # The group and the cgroup first: an orphan is made when a process of the
            # run exits, so once they are seen empty, the sweep after it sees them all.
            in_group = group_alive()
            in_cgroup = self.cgroup is not None and self.cgroup.populated()
            orphans = await self.containment.orphans_of(self.run_id)
            if not (orphans or in_cgroup or in_group):
                return
            now = loop.time()
            if now >= deadline + GIVE_UP_AFTER_KILL:
                log.warning("run.leftovers_remain", run_id=self.run_id, pids=orphans)
                return
            wanted = signal.SIGKILL if now >= deadline else stop_signal
            if group_signal != wanted and (in_group or in_cgroup):
                group_signal = wanted
                signal_group(wanted)
                self._signal_cgroup(wanted)
            for pid in orphans:
                if sent.get(pid) != wanted:
                    sent[pid] = wanted
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, wanted)
            await asyncio.sleep(POLL)

    def _signal_cgroup(self, signum: int) -> None:
        if self.cgroup is None:
            return
        if signum == signal.SIGKILL:
            self.cgroup.kill()
        else:
            self.cgroup.signal(signum)

    def kill_now(self) -> None:
        """The daemon is going down or the run's record failed: no waiting."""
        for pid in self.containment.orphans_now(self.run_id):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._signal_cgroup(signal.SIGKILL)

    def judged(self, outcome: Outcome, cost: RunCost | None) -> Outcome:
        """A failed run's error names the bound that ended it, or those it ran under."""
        if outcome.end_reason != EndReason.FAILED:
            return outcome
        events = self.cgroup.events() if self.cgroup is not None else CgroupEvents()
        cpu = cost.cpu_user_s + cost.cpu_system_s if cost is not None else None
        error = bound_error(self.plan, signal_number=outcome.signal, cpu_seconds=cpu, events=events)
        if error is None:
            return outcome
        return replace(
            outcome, error=error if outcome.error is None else f"{error}; {outcome.error}"
        )

    def cost(self, reaped: RunCost | None) -> RunCost | None:
        """The main process's cost (with the descendants it waited for), plus the
        orphans the daemon reaped, or the cgroup's count of the whole tree."""
        parts = [c for c in (reaped, *self.containment.take_leftover_cost(self.run_id)) if c]
        if self.cgroup is not None:
            cpu = self.cgroup.cpu_seconds()
            peak = self.cgroup.memory_peak()
            if cpu is not None:
                return RunCost(round(cpu[0], 6), round(cpu[1], 6), peak or _peak_of(parts))
        if not parts:
            return None
        return RunCost(
            round(sum(c.cpu_user_s for c in parts), 6),
            round(sum(c.cpu_system_s for c in parts), 6),
            _peak_of(parts),
        )

    def close(self) -> None:
        if self.cgroup is not None and not self.cgroup.remove():
            log.warning("run.cgroup_busy", run_id=self.run_id, cgroup=str(self.cgroup.path))


def _peak_of(parts: list[RunCost]) -> int | None:
    peaks = [c.max_rss_bytes for c in parts if c.max_rss_bytes is not None]
    return max(peaks) if peaks else None
