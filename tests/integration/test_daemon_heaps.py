"""A daemon's threads share two malloc heaps, unless its operator says otherwise with
MALLOC_ARENA_MAX (README, "Many tasks on one host").  Counted in /proc/PID/smaps: glibc
places each heap beside the main one at a 64 MiB boundary."""

from __future__ import annotations

import platform
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's heaps")

HEAP_ALIGNMENT = 64 * 2**20
TASKS = """
[tasks.hello]
command = "echo hello"
"""


def malloc_heaps(pid: int) -> int:
    """The main heap and every thread heap (an anonymous writable mapping that starts
    on a 64 MiB boundary)."""
    heaps = 0
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            start = int(fields[0].split("-")[0], 16)
            anonymous = len(fields) < 6
            if fields[1] == "rw-p" and (
                fields[-1] == "[heap]" or (anonymous and start % HEAP_ALIGNMENT == 0)
            ):
                heaps += 1
    return heaps


def keep_busy(daemon: Any) -> None:
    """Runs, their logs and the store's threads: every kind of work a thread does."""
    for _ in range(20):
        run = daemon.trigger("hello")
        assert daemon.wait_run(run["id"])["end_reason"] == "success"
        assert daemon.get(f"/api/runs/{run['id']}/log").status == 200
    assert daemon.get("/metrics").status == 200


def test_a_busy_daemon_keeps_two_malloc_heaps(make_daemon) -> None:
    daemon = make_daemon(TASKS, start=False)
    daemon.wrapper = ["env"]  # a process of its own: not forked with the test's heaps
    daemon.start()
    keep_busy(daemon)
    assert malloc_heaps(daemon.proc.pid) <= 2
