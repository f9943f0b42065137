"""A run placed before it runs (its cgroup) waits in a shell for the daemon's word:
that shell must leave every signal to the command, or a stop that comes before the
exec is caught by the shell and lost with it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from cronwarden.runners.process import ProcessSpec, spawn


def wait_for_state(pid: int, state: str) -> None:
    """Until the process is in ``state`` (/proc/PID/stat: S sleeping, Z exited)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == state:
                return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never reached state {state}")


def caught_once_waiting(pid: int) -> int:
    """The signals the process catches, once it sleeps: blocked reading its stdin, its
    shell's start-up (where handlers are set) is behind it."""
    wait_for_state(pid, "S")
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("SigCgt:"))
    return int(line.split()[1], 16)


async def test_the_shell_waiting_to_be_placed_catches_no_signal(tmp_path: Path) -> None:
    masks: list[int] = []
    output: list[bytes] = []
    spec = ProcessSpec(
        argv=["/bin/sh", "-c", 'echo "$0 $1"', "placed", "run"],
        env={"PATH": os.environ["PATH"]},
        cwd=tmp_path,
    )
    process = spawn(
        spec,
        lambda _stream, data: output.append(data),
        placed=lambda pid: masks.append(caught_once_waiting(pid)),
    )
    assert await process.wait() == 0
    await process.drain(5)
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1)
    assert masks and not any(masks[0] & (1 << (signum - 1)) for signum in stop_signals)
    assert b"".join(output) == b"placed run\n"  # then the command ran, with its arguments


def stopped_and_gone(pid: int) -> None:
    """SIGINT to the group, then wait until the process has exited (a zombie): the
    daemon's word then meets a pipe nobody reads."""
    os.killpg(pid, signal.SIGINT)
    wait_for_state(pid, "Z")


async def test_a_stop_while_waiting_to_be_placed_ends_the_run_by_that_signal(
    tmp_path: Path,
) -> None:
    spec = ProcessSpec(argv=["sleep", "30"], env={"PATH": os.environ["PATH"]}, cwd=tmp_path)
    process = spawn(spec, lambda _stream, _data: None, placed=stopped_and_gone)
    assert await process.wait() == -signal.SIGINT
    await process.drain(5)
