"""What a run cost, from the kernel: the ``wait4`` resource usage of its main process
and of the descendants it waited for (a process that escaped to init is not counted:
it is not this run's any more as far as the kernel's accounting goes)."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass

# ru_maxrss is in kilobytes on Linux (bytes on macOS).
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


@dataclass(frozen=True, slots=True)
class RunCost:
    cpu_user_s: float
    cpu_system_s: float
    max_rss_bytes: int

    @classmethod
    def of(cls, usage: resource.struct_rusage) -> RunCost:
        return cls(
            cpu_user_s=round(usage.ru_utime, 6),
            cpu_system_s=round(usage.ru_stime, 6),
            max_rss_bytes=int(usage.ru_maxrss) * _MAXRSS_UNIT,
        )

    def values(self) -> dict[str, float | int]:
        """The run's columns."""
        return {
            "cpu_user_s": self.cpu_user_s,
            "cpu_system_s": self.cpu_system_s,
            "max_rss_bytes": self.max_rss_bytes,
        }
