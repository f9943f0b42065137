"""The kernel's process events (proc connector): an exit's status and time, read after
the fact."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from cronwarden.runners.proc_events import PROC_EVENT_EXIT, ExitClock, ExitEvent, exit_of

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


async def test_an_exit_seen_late_is_dated_when_it_happened() -> None:
    clock = ExitClock()
    if not clock.open():
        if IN_CI:
            pytest.fail("the proc connector is refused here; CI runs as root on the host")
        pytest.skip("the proc connector needs CAP_NET_ADMIN in the initial network namespace")
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
