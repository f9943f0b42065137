"""The kernel's process events (proc connector): an exit's status and time, read after
the fact."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time

import pytest

from cronwarden.runners.proc_events import (
    PROC_EVENT_EXIT,
    ExitClock,
    ExitEvent,
    exit_of,
    open_events,
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _event(what: int, pid: int, tgid: int, stamp: int, status: int = 0) -> bytes:
    import struct

    return bytes(36) + struct.pack("=IIQiiII", what, 0, stamp, pid, tgid, status, 0) + bytes(8)


def test_only_a_process_exit_is_read_with_its_status() -> None:
    assert exit_of(_event(PROC_EVENT_EXIT, 42, 42, 1_000, 3 << 8)) == ExitEvent(42, 1_000, 3)
    assert exit_of(_event(PROC_EVENT_EXIT, 42, 42, 1_000, 9)) == ExitEvent(42, 1_000, -9)
    assert exit_of(_event(PROC_EVENT_EXIT, 43, 42, 1_000)) is None  # a thread, not the process
    assert exit_of(_event(0x00000001, 42, 42, 1_000)) is None  # a fork event
    assert exit_of(b"short") is None


def _refused() -> None:
    if IN_CI:
        pytest.fail("the proc connector is refused here; CI runs as root on the host")
    pytest.skip("the proc connector needs CAP_NET_ADMIN in the initial network namespace")


def test_the_kernel_sends_only_exits_of_processes() -> None:
    """Forks, execs and a thread's exit are dropped before they reach the daemon (a
    socket filter): each would be a read on the event loop for nothing."""
    try:
        sock = open_events()
    except OSError:
        _refused()
    try:
        # A shell that forks and execs, and a Python whose thread ends before it does.
        shell = subprocess.run(["/bin/sh", "-c", "/bin/true; /bin/true"], check=True)
        threaded = subprocess.run(
            [sys.executable, "-c", "import threading; t = threading.Thread(); t.start()"],
            check=True,
        )
        assert shell.returncode == threaded.returncode == 0
        messages = []
        with contextlib.suppress(BlockingIOError):
            while True:
                messages.append(sock.recv(65536))
        exits = [exit_of(message) for message in messages]
        assert messages and None not in exits
    finally:
        sock.close()


async def test_an_exit_seen_late_is_dated_when_it_happened() -> None:
    clock = ExitClock()
    if not clock.open():
        _refused()
    try:
        child = await asyncio.create_subprocess_exec("sleep", "0.1")
        clock.watch(child.pid)
        await child.wait()
        seen_after = time.monotonic()
        time.sleep(0.5)  # noqa: ASYNC251 - the loop held up: nothing reads the events
        ago = clock.take(child.pid)
        assert ago is not None and ago >= time.monotonic() - seen_after >= 0.5
        assert clock.take(child.pid) is None  # asked once, then forgotten
        assert clock.take(1) is None  # never watched
    finally:
        clock.close()
