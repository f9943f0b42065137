"""The daemon's cgroup v2, and one child cgroup per run under it.

A run in a cgroup of its own cannot leave it, whatever it does (setsid, double fork,
a new process group): ``cgroup.kill`` ends every process in it at once, its
``cpu.stat`` counts the CPU of every process that ever ran in it, and the memory and
pids controllers bound the whole tree and say when they acted.

The layout follows systemd's rules for a delegated unit (``Delegate=yes``): a cgroup
that enables controllers for its children may hold no process itself, so the daemon
moves itself (and whatever shares its cgroup, such as a keeper that outlived the
previous daemon) into ``daemon/``, and the runs go under ``runs/``.  Started in the
root of a cgroup namespace (a container), where that rule does not apply, the runs go
under a directory of their own named after the data directory, so several daemons on
one host keep apart.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cronwarden.errors import CgroupUnavailable

CONTROLLERS = ("memory", "pids", "cpu")  # the ones limits use


@dataclass(frozen=True)
class CgroupEvents:
    """What a run's cgroup says the kernel did to it (all zero without one)."""

    oom_kills: int = 0
    pids_refused: int = 0


@dataclass(frozen=True)
class CgroupHome:
    """Where the runs' cgroups are made, and the controllers they get."""

    runs: Path
    controllers: frozenset[str]

    def cgroup(self, run_id: str) -> RunCgroup:
        return RunCgroup(self.runs / run_id)


def open_home(
    data_dir: Path, *, required_delegation: bool, proc: Path = Path("/proc")
) -> CgroupHome:
    """The runs' cgroup parent, set up; raises CgroupUnavailable saying why not.

    ``required_delegation``: only a cgroup delegated to the daemon (systemd marks one
    with the ``trusted.delegate`` attribute) is used; else any writable one is.
    """
    own, at_root = _own_cgroup(proc)
    if not os.access(own, os.W_OK):
        raise CgroupUnavailable(f"the daemon may not write to its cgroup {own}")
    if required_delegation and not _delegated(own):
        raise CgroupUnavailable(
            f"the daemon's cgroup {own} was not delegated to it (systemd: Delegate=yes)"
        )
    if at_root:  # the root has no cgroup.kill of its own: ask a child
        runs = own / ("cronwarden-" + hashlib.sha256(bytes(data_dir)).hexdigest()[:12])
    else:
        runs = own / "runs"
    try:
        runs.mkdir(exist_ok=True)
        if not (runs / "cgroup.kill").exists():
            runs.rmdir()
            raise CgroupUnavailable(f"{own} has no cgroup.kill (Linux 5.14 or later has it)")
        if not at_root:
            _move_processes(own, own / "daemon")
        _enable(own, CONTROLLERS)
        enabled = _enable(runs, CONTROLLERS)
    except OSError as exc:
        raise CgroupUnavailable(f"cannot set up the runs' cgroups under {own}: {exc}") from exc
    return CgroupHome(runs, enabled)


def _own_cgroup(proc: Path) -> tuple[Path, bool]:
    """The daemon's cgroup v2 directory, and whether it is the root of its mount."""
    relative = None
    for line in (proc / "self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            relative = line[3:]
    if relative is None:
        raise CgroupUnavailable("the daemon is in no cgroup v2 hierarchy (cgroup v1 only)")
    for line in (proc / "self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.split(" ", 1)[0] == "cgroup2":
            fields = before.split()
            root, mount = fields[3], fields[4]
            inside = os.path.relpath(relative, root) if relative.startswith(root) else None
            if inside is not None:
                path = Path(mount) / inside
                return path.resolve(), path.resolve() == Path(mount).resolve()
    raise CgroupUnavailable(f"the cgroup v2 hierarchy holding {relative} is not mounted here")


def _delegated(path: Path) -> bool:
    for name in ("trusted.delegate", "user.delegate"):
        with contextlib.suppress(OSError):
            if os.getxattr(path, name) == b"1":
                return True
    return False


def _move_processes(source: Path, target: Path) -> None:
    target.mkdir(exist_ok=True)
    for pid in (source / "cgroup.procs").read_text().split():
        with contextlib.suppress(ProcessLookupError):
            (target / "cgroup.procs").write_text(pid)


def _enable(path: Path, wanted: tuple[str, ...]) -> frozenset[str]:
    """Enable what it can of ``wanted`` for the children of ``path``; what is enabled."""
    available = set((path / "cgroup.controllers").read_text().split())
    for name in wanted:
        if name in available:
            with contextlib.suppress(OSError):  # e.g. bound to a cgroup v1 hierarchy
                (path / "cgroup.subtree_control").write_text(f"+{name}")
    return frozenset((path / "cgroup.subtree_control").read_text().split()) & set(wanted)


@dataclass(frozen=True)
class RunCgroup:
    """One run's cgroup.  Its files are read and written from the event loop: they
    are the kernel's own counters, answered without I/O."""

    path: Path

    def create(self, files: tuple[tuple[str, str], ...]) -> None:
        self.path.mkdir(exist_ok=True)
        for name, value in files:
            try:
                (self.path / name).write_text(value)
            except FileNotFoundError:  # memory.swap.max without swap accounting
                continue

    def add(self, pid: int) -> None:
        """Move a process in (its children from then on are born inside)."""
        with contextlib.suppress(ProcessLookupError):
            (self.path / "cgroup.procs").write_text(str(pid))

    def exists(self) -> bool:
        return self.path.is_dir()

    def populated(self) -> bool:
        try:
            return "populated 1" in (self.path / "cgroup.events").read_text()
        except FileNotFoundError:
            return False

    def signal(self, signum: int) -> None:
        """Signal every process in it (cgroup.kill only knows SIGKILL)."""
        try:
            pids = (self.path / "cgroup.procs").read_text().split()
        except FileNotFoundError:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signum)

    def kill(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / "cgroup.kill").write_text("1")

    def events(self) -> CgroupEvents:
        return CgroupEvents(
            oom_kills=self._counter("memory.events", "oom_kill"),
            pids_refused=self._counter("pids.events", "max"),
        )

    def cpu_seconds(self) -> tuple[float, float] | None:
        """User and system CPU of every process that ran in it."""
        user = self._counter("cpu.stat", "user_usec")
        system = self._counter("cpu.stat", "system_usec")
        if not (self.path / "cpu.stat").exists():
            return None
        return user / 1e6, system / 1e6

    def memory_peak(self) -> int | None:
        try:
            return int((self.path / "memory.peak").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def remove(self) -> bool:
        """Remove it once empty; False while a process is still in it."""
        try:
            self.path.rmdir()
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                return False
            raise
        return True

    def _counter(self, file: str, key: str) -> int:
        try:
            text = (self.path / file).read_text()
        except FileNotFoundError:
            return 0
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
        return 0
