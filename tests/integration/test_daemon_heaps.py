"""A daemon's threads share two malloc heaps, unless its operator says otherwise with
MALLOC_ARENA_MAX (README, "Many tasks on one host").  Counted from /proc/PID/maps and
/proc/PID/mem: glibc places each heap of a thread's arena at a 64 MiB boundary, and the
first heap of an arena holds the arena itself right after its header, which the
header's first word points to.  A mapping that only happens to start at a 64 MiB
boundary (one in 16,384 does: a full suite once counted three "heaps"), and a second
heap of an arena that outgrew its first, are not another arena."""

from __future__ import annotations

import platform
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's heaps")

HEAP_ALIGNMENT = 64 * 2**20
HEADER_MAX = 256  # glibc's heap_info: 32-48 bytes, as versions go
TASKS = """
[tasks.hello]
command = "echo hello"
"""


def malloc_arenas(pid: int) -> int:
    """The main arena and every thread arena: a writable anonymous mapping on a 64 MiB
    boundary whose first word points just past its own header."""
    arenas = 1
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as mem:
        for line in maps:
            fields = line.split()
            start = int(fields[0].split("-")[0], 16)
            anonymous = len(fields) < 6
            if fields[1] != "rw-p" or not anonymous or start % HEAP_ALIGNMENT:
                continue
            mem.seek(start)
            arena = int.from_bytes(mem.read(8), "little")
            if start < arena < start + HEADER_MAX:
                arenas += 1
    return arenas


def keep_busy(daemon: Any) -> None:
    """Runs, their logs and the store's threads: every kind of work a thread does."""
    for _ in range(20):
        run = daemon.trigger("hello")
        assert daemon.wait_run(run["id"])["end_reason"] == "success"
        assert daemon.get(f"/api/runs/{run['id']}/log").status == 200
    assert daemon.get("/metrics").status == 200


def test_a_busy_daemon_keeps_two_malloc_arenas(make_daemon) -> None:
    daemon = make_daemon(TASKS, start=False)
    daemon.wrapper = ["env"]  # a process of its own: not forked with the test's heaps
    daemon.start()
    keep_busy(daemon)
    assert malloc_arenas(daemon.proc.pid) <= 2
