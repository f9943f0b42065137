"""What a run cost, from the kernel: the ``wait4`` resource usage of its main process
and of the descendants it waited for, plus what the daemon reaped of the processes the
run left (runners/containment.py); a run with a cgroup of its own counts from that.

The peak memory of the main process is known only above the daemon's own: a process
started by vfork (or fork) and exec inherits its parent's high-water mark in its
``ru_maxrss`` (the kernel keeps the larger of the old and the new address space's), so
a small job spawned by a 90 MB daemon reports 90 MB.  Below that mark the peak is not
known without a memory cgroup, and is recorded as null rather than as the daemon's."""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import dataclass

# ru_maxrss is in kilobytes on Linux (bytes on macOS).
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


@dataclass(frozen=True, slots=True)
class RunCost:
    cpu_user_s: float
    cpu_system_s: float
    max_rss_bytes: int | None

    @classmethod
    def of(cls, usage: resource.struct_rusage, inherited: int = 0) -> RunCost:
        """``inherited``: the spawner's own peak when it started the process, in the
        kernel's unit (spawner_peak()): a peak no higher is the spawner's, not the run's."""
        return cls(
            cpu_user_s=round(usage.ru_utime, 6),
            cpu_system_s=round(usage.ru_stime, 6),
            max_rss_bytes=(
                int(usage.ru_maxrss) * _MAXRSS_UNIT if usage.ru_maxrss > inherited else None
            ),
        )

    def values(self) -> dict[str, float | int | None]:
        """The run's columns."""
        return {
            "cpu_user_s": self.cpu_user_s,
            "cpu_system_s": self.cpu_system_s,
            "max_rss_bytes": self.max_rss_bytes,
        }


def spawner_peak() -> int:
    """The daemon's own high-water mark (VmHWM, in ru_maxrss's kB): what a process it
    spawns inherits.  Not ``getrusage``: that also holds what the daemon inherited from
    its own spawner (a test runner's, a shell's), which its runs do not.  One pread of
    a descriptor kept open (~8 us)."""
    global _status_fd
    if _status_fd is None:
        _status_fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
    status = os.pread(_status_fd, 8192, 0)
    at = status.find(b"VmHWM:")
    if at < 0:
        return 0
    return int(status[at + 6 : status.index(b"kB", at)])


_status_fd: int | None = None
