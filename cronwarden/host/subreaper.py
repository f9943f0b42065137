"""The daemon as child subreaper: what its runs leave behind comes back to it.

A process whose parent exits is handed to the nearest ancestor that asked for it with
``PR_SET_CHILD_SUBREAPER`` (else to PID 1).  So a run's main process that exits, or a
child that double-forked and called setsid to slip out of the run's process group,
leaves its children with the daemon: they can be found (the main thread's
``/proc/self/task/PID/children``), told apart by the run id every run's environment
carries, ended with their run, and reaped, so no zombie piles up under a daemon that
is PID 1 in a container either.

Which children are the daemon's own: the runs' main processes and the keeper are
registered here the moment they are spawned (from the event loop, which the reaping
also runs on, so no sweep sees one unregistered), and their owners reap them.  A child
in the daemon's own session is one asyncio spawned (a command alert target): asyncio's
watcher reaps it.  Every other child is an orphan, and is reaped here.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

from cronwarden.host.control_env import RUN_ID_VARIABLE
from cronwarden.host.procfs import environ_variable, read_proc
from cronwarden.support.libc import libc_function

PR_SET_CHILD_SUBREAPER = 36

_own: set[int] = set()  # children the daemon reaps itself


def become_subreaper() -> bool:
    """Ask the kernel for the orphans of every descendant; False where it refuses."""
    prctl = libc_function("prctl")
    return prctl is not None and int(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


def own_child(pid: int) -> None:
    """A child the daemon just spawned and will reap itself."""
    _own.add(pid)


def disown_child(pid: int) -> None:
    """Reaped by its owner: the pid may name another process from now on."""
    _own.discard(pid)


@dataclass(frozen=True)
class Orphan:
    pid: int
    run_id: str | None  # from its environment; None: it has none (env -i, or unreadable)


@dataclass(frozen=True)
class Reaped:
    run_id: str | None
    usage: resource.struct_rusage


class Orphanage:
    """The daemon's orphaned children: found, attributed to their run, reaped."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self._proc = str(proc)
        self._children_file = f"{proc}/self/task/{os.getpid()}/children"
        self._session = os.getsid(0)
        self._run_of: dict[int, str | None] = {}  # valid while the pid is unreaped

    def sweep(self) -> tuple[list[Orphan], list[Reaped]]:
        """The orphans still alive, and those reaped now (with what they cost)."""
        alive: list[Orphan] = []
        reaped: list[Reaped] = []
        listed = self._children()
        for pid in listed - _own:
            session, zombie = self._stat(pid)
            if session is None or session == self._session:
                continue  # gone meanwhile, or asyncio's child
            # Read again until it names a run: an environment read while the process
            # is between exec's steps comes back empty.
            run_id = self._run_of.get(pid) or self._attribute(pid, zombie)
            if zombie:
                usage = self._reap(pid)
                if usage is not None:
                    reaped.append(Reaped(run_id, usage))
                continue
            self._run_of[pid] = run_id
            alive.append(Orphan(pid, run_id))
        for pid in set(self._run_of) - listed:
            del self._run_of[pid]
        return alive, reaped

    def _children(self) -> set[int]:
        """The main thread's children: the kernel hands every orphan to the first live
        thread of its subreaper (``find_new_reaper``), the thread-group leader, whatever
        thread forked its parent.  One file, not every thread's: a sweep runs for every
        burst of ends, and listing the threads and reading a file for each was most of
        its cost.  The daemon's own children (forked by whichever thread) need no
        sweep: their owners reap them."""
        return set(map(int, read_proc(self._children_file).split()))

    def _stat(self, pid: int) -> tuple[int | None, bool]:
        stat = read_proc(f"{self._proc}/{pid}/stat")
        if not stat:
            return None, False
        fields = stat[stat.rfind(b")") + 2 :].split()
        return int(fields[3]), fields[0] == b"Z"

    def _attribute(self, pid: int, zombie: bool) -> str | None:
        if zombie:
            return None  # its environment went with its memory
        run_id = environ_variable(f"{self._proc}/{pid}/environ", RUN_ID_VARIABLE)
        return run_id.decode(errors="replace") if run_id is not None else None

    def _reap(self, pid: int) -> resource.struct_rusage | None:
        self._run_of.pop(pid, None)
        try:
            done, _, usage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        return usage if done else None
