"""Pure: how a task's ``limits`` are applied on this host, and what a run's end says of
them.

A bound goes to the run's own cgroup where its controller is there (the kernel then
bounds the whole process tree, and says when it acted: ``memory.events``,
``pids.events``), else to a resource limit of the run's processes (``setrlimit``, set
by util-linux's ``prlimit`` in front of the command, so the spawn keeps Python's
vfork path: a ``preexec_fn`` would make every such spawn a full fork of the daemon).
A resource limit bounds each process, not the tree, and the kernel does not report
when it refused a request: the run's error then says under which limit it failed.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from datetime import timedelta

from cronwarden.config import RunLimits
from cronwarden.host.cgroups import CgroupEvents
from cronwarden.support.units import format_duration, format_size

CPU_PERIOD_US = 100_000  # cpu.max's period; the quota is the share of it


@dataclass(frozen=True)
class BoundPlan:
    """Where each bound of one run goes."""

    limits: RunLimits | None = None
    cgroup_files: tuple[tuple[str, str], ...] = ()  # (file, value) in the run's cgroup
    rlimits: tuple[tuple[str, int], ...] = ()  # (prlimit option, value)
    unenforced: tuple[str, ...] = ()  # why a bound cannot hold here, one line each
    prlimit: str = "prlimit"  # the program that sets the rlimits and execs the command

    def prefix(self) -> list[str]:
        """What goes in front of the command (nothing when no rlimit is needed)."""
        if not self.rlimits:
            return []
        options = (f"--{name}={value}:{_hard(name, value)}" for name, value in self.rlimits)
        return [self.prlimit, *options, "--"]

    def in_rlimits(self, name: str) -> bool:
        return any(option == name for option, _ in self.rlimits)


NO_BOUNDS = BoundPlan()


def plan_bounds(
    limits: RunLimits | None, controllers: frozenset[str], uid: int, prlimit: str | None
) -> BoundPlan:
    """``controllers``: those of the run's own cgroup (empty without one); ``uid``: the
    user the run runs as (root's processes are not held by RLIMIT_NPROC); ``prlimit``:
    where util-linux's prlimit is (None: not installed)."""
    if limits is None:
        return NO_BOUNDS
    files: list[tuple[str, str]] = []
    rlimits: list[tuple[str, int]] = []
    unenforced: list[str] = []
    if limits.memory is not None:
        if "memory" in controllers:
            files += [("memory.max", str(limits.memory)), ("memory.swap.max", "0")]
        else:
            rlimits.append(("as", limits.memory))
    if limits.processes is not None:
        if "pids" in controllers:
            files.append(("pids.max", str(limits.processes)))
        elif uid == 0:
            unenforced.append(
                f"processes {limits.processes}: not enforced for a run as root without a "
                "cgroup with the pids controller (root is exempt from RLIMIT_NPROC)"
            )
        else:
            rlimits.append(("nproc", limits.processes))
    if limits.cpu is not None:
        if "cpu" in controllers:
            files.append(("cpu.max", f"{round(limits.cpu * CPU_PERIOD_US)} {CPU_PERIOD_US}"))
        else:
            unenforced.append(
                f"cpu {limits.cpu:g}: not enforced without a cgroup with the cpu controller"
            )
    if limits.cpu_time is not None:
        rlimits.append(("cpu", int(limits.cpu_time.total_seconds())))
    if limits.open_files is not None:
        rlimits.append(("nofile", limits.open_files))
    if rlimits and prlimit is None:
        unenforced += [
            f"{name}: not enforced: util-linux's prlimit is not installed"
            for name in (_RLIMIT_KEYS[option] for option, _ in rlimits)
        ]
        rlimits = []
    return BoundPlan(limits, tuple(files), tuple(rlimits), tuple(unenforced), prlimit or "")


_RLIMIT_KEYS = {"as": "memory", "nproc": "processes", "cpu": "cpu_time", "nofile": "open_files"}


def _hard(name: str, value: int) -> int:
    # RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL a second later for a process
    # that ignores it.  The others: soft and hard alike, so nothing can raise them.
    return value + 1 if name == "cpu" else value


def bound_error(
    plan: BoundPlan,
    *,
    signal_number: int | None,
    cpu_seconds: float | None,
    events: CgroupEvents,
) -> str | None:
    """For a failed run: the bound that ended it, or the limits it failed under."""
    limits = plan.limits
    if limits is None:
        return None
    if limits.memory is not None and events.oom_kills:
        return f"killed: memory limit {format_size(limits.memory)}"
    if limits.cpu_time is not None and _cpu_time_spent(limits.cpu_time, signal_number, cpu_seconds):
        return f"killed: cpu_time limit {format_duration(limits.cpu_time)}"
    if limits.processes is not None and events.pids_refused:
        return f"failed: processes limit {limits.processes} refused a new process"
    under = [
        text
        for option, text in (
            ("as", f"memory limit {format_size(limits.memory or 0)} (address space)"),
            ("nofile", f"open_files limit {limits.open_files}"),
            ("nproc", f"processes limit {limits.processes}"),
        )
        if plan.in_rlimits(option)
    ]
    if not under:
        return None
    return f"failed under its {' and '.join(under)}: a request past a limit fails"


def _cpu_time_spent(limit: timedelta, signal_number: int | None, cpu: float | None) -> bool:
    if signal_number == signal.SIGXCPU:
        return True
    return signal_number == signal.SIGKILL and cpu is not None and cpu >= limit.total_seconds()
