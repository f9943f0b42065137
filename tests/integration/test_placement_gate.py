"""A run placed before it runs (its cgroup) waits in a shell for the daemon's word:
that shell must leave every signal to the command, or a stop that comes before the
exec is caught by the shell and lost with it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from conftest import process_state, signal_masks, wait_for  # type: ignore[import-not-found]

from cronwarden.runners.process import ProcessSpec, spawn


def caught_once_waiting(pid: int) -> int:
    """The signals the process catches, once it sleeps: blocked reading its stdin, its
    shell's start-up (where handlers are set) is behind it."""
    wait_for(lambda: process_state(pid) == "S", 30, "the shell waiting for its script")
    return signal_masks(pid)["SigCgt"]


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
    wait_for(lambda: process_state(pid) == "Z", 30, "the stopped shell to exit")


async def test_a_stop_while_waiting_to_be_placed_ends_the_run_by_that_signal(
    tmp_path: Path,
) -> None:
    spec = ProcessSpec(argv=["sleep", "30"], env={"PATH": os.environ["PATH"]}, cwd=tmp_path)
    process = spawn(spec, lambda _stream, _data: None, placed=stopped_and_gone)
    assert await process.wait() == -signal.SIGINT
    await process.drain(5)
