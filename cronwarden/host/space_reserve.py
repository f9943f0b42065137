"""Room kept aside in data_dir so outcomes can still be recorded once it fills up.

A run that writes without end can fill the disk that holds the history.  Without room,
not even the record of its end could be written and it would stay "running" forever
(with overlap = skip, its task would never run again).  So the daemon holds a small
file of preallocated space: the first "no space left on device" in data_dir releases
it, loudly, which leaves room for the records; /health says "degraded" until there is
space again, and the reserve is taken back as soon as there is.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import structlog

log = structlog.get_logger("cronwarden.disk")

# What the reserve must hold, measured (tests/faults/test_reserve_size.py keeps these
# honest): recording one run's claim, start and end grows the SQLite database by
# ~1.7 KB (its row and indexes), and the WAL stays under ~640 KiB (store/engine.py
# checkpoints every 512 KiB and cuts it back to that; the rest is one transaction's
# pages past the threshold).  1 MiB was less than the WAL alone, which grew ~4 MB
# before a checkpoint and ate the reserve within seconds.  3 MiB covers the WAL plus
# the outcomes of 1,000 runs (~2.3 MB), with room to spare.
WAL_BOUND_BYTES = 640 * 1024
RESERVE_OUTCOMES = 1000
RESERVE_BYTES = 3 * 1024 * 1024


class SpaceReserve:
    def __init__(self, data_dir: Path, size: int = RESERVE_BYTES) -> None:
        self.path = data_dir / "space-reserve"
        self.size = size
        self.released = False

    def hold(self) -> bool:
        """Take the reserve (back) if there is room for it and as much again."""
        if not self.released and self.path.exists():
            return True
        stats = os.statvfs(self.path.parent)
        if stats.f_bavail * stats.f_frsize < 2 * self.size:
            return False
        try:
            with open(self.path, "wb") as file:
                os.posix_fallocate(file.fileno(), 0, self.size)
        except OSError:
            with contextlib.suppress(OSError):
                self.path.unlink()
            return False
        if self.released:
            log.info("disk.space_back", data_dir=str(self.path.parent))
        self.released = False
        return True

    def release(self, why: str) -> None:
        """data_dir is full: free the reserve so records can still be written."""
        if self.released:
            return
        self.released = True
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        log.error(
            "disk.full",
            data_dir=str(self.path.parent),
            error=why,
            meaning="run output is being dropped until there is space again; "
            f"{self.size} bytes kept aside were freed so outcomes can still be recorded",
        )

    @property
    def full(self) -> bool:
        """Whether data_dir is (still) full; takes the reserve back when it is not."""
        return self.released and not self.hold()
