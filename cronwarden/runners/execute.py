"""One run of one process: spawn, capture, time out or stop, and say how it ended."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from cronwarden.model import EndReason
from cronwarden.runlog.writer import LogWriter
from cronwarden.runners.containment import ContainedRun
from cronwarden.runners.cost import RunCost
from cronwarden.runners.outcome import Outcome, classify, runs_in_shell
from cronwarden.runners.proc_events import ExitClock
from cronwarden.runners.process import (
    AdoptedProcess,
    GroupLeader,
    GroupProcess,
    OutputPipe,
    ProcessSpec,
    drain,
    spawn,
)
from cronwarden.support.flag import Flag

# How long output may keep flowing after the main process exited (a grandchild that
# went to the background may hold the pipes forever).
DRAIN_GRACE = 2.0


# Called once the process exists: its pid, and a reader of its start time in /proc.
StartedCallback = Callable[[int, Callable[[], int | None]], None]
# Gives a spawned process's pipes to the keeper; returns what lets them go.
Hold = Callable[[GroupProcess], Callable[[], None]]


@dataclass(frozen=True)
class Limits:
    timeout: float | None
    stop_signal: int
    kill_grace: float
    success_exit_codes: Collection[int]


@dataclass
class RunControl:
    """The handle a dispatcher keeps on a live run to stop it from outside."""

    stop: Flag = field(default_factory=Flag)
    overflow: Flag = field(default_factory=Flag)  # its log is full (log_on_full = "kill")


async def execute(
    spec: ProcessSpec,
    limits: Limits,
    log: LogWriter,
    control: RunControl,
    on_started: StartedCallback,
    exits: ExitClock | None = None,
    hold: Hold | None = None,
    contained: ContainedRun | None = None,
) -> tuple[Outcome, float | None, RunCost | None]:
    """Run the process to its end and classify that end; also how many seconds ago
    the kernel says it exited (None when ``exits`` cannot tell: then it is now), and
    what it cost.
    ``hold``: its pipes are held by the keeper from its spawn to the end of its output.
    ``contained``: its bounds, and what ends every process it leaves (else its group).

    Raises StartFailed when the process cannot be started; never for how it ended.
    """
    if contained is None:
        process = spawn(spec, log.feed)
    else:
        process = spawn(spec, log.feed, contained.plan.prefix(), contained.placement())
    release = hold(process) if hold is not None else None
    try:
        if exits is not None:
            exits.watch(process.pid)
        try:
            on_started(process.pid, process.start_ticks)
            forced = await _supervise(process, limits, control)
        except BaseException:
            # The daemon is going down or the record failed: never leave an orphan group.
            process.signal_group(signal.SIGKILL)
            if contained is not None:
                contained.kill_now()
            if exits is not None:
                exits.take(process.pid)
            raise
        returncode = await process.wait()
        exited_ago = exits.take(process.pid) if exits is not None else None
        assert returncode is not None  # our own child: its status is always known
        if contained is not None:
            await contained.end(
                process.signal_group, process.group_alive, limits.stop_signal, limits.kill_grace
            )
        held = await process.drain(DRAIN_GRACE)
    finally:
        if release is not None:
            release()
    outcome = classify(
        returncode,
        forced=forced,
        success_exit_codes=limits.success_exit_codes,
        via_shell=runs_in_shell(spec.argv),
    )
    if contained is None:
        return _noting_held(outcome, held), exited_ago, process.cost
    cost = contained.cost(process.cost)
    return contained.judged(_noting_held(outcome, held), cost), exited_ago, cost


def _noting_held(outcome: Outcome, held: bool) -> Outcome:
    if not held or outcome.error is not None:
        return outcome
    return Outcome(
        outcome.end_reason,
        outcome.exit_code,
        outcome.signal,
        "output after the process exited was not captured: a background "
        f"process still held its output after {DRAIN_GRACE:g}s",
    )


async def watch_adopted(
    process: AdoptedProcess,
    limits: Limits,
    control: RunControl,
    via_shell: bool,
    outputs: list[OutputPipe],
    contained: ContainedRun | None = None,
) -> Outcome:
    """Supervise a re-adopted process to its end: timeout and stop still apply.
    ``outputs``: its pipes, when its keeper held them (else its output is lost)."""
    forced = await _supervise(process, limits, control)
    returncode = await process.wait()
    if contained is not None:
        await contained.end(
            process.signal_group, process.group_alive, limits.stop_signal, limits.kill_grace
        )
    held = await drain(outputs, DRAIN_GRACE) if outputs else False
    if returncode is None:
        return Outcome(
            forced or EndReason.CRASHED,
            error="re-adopted after a daemon restart; it ended, but its exit status could not "
            "be read (reading the exit status of a process that is not the daemon's child "
            "needs root)",
        )
    outcome = classify(
        returncode, forced=forced, success_exit_codes=limits.success_exit_codes, via_shell=via_shell
    )
    if outputs:
        return _noting_held(outcome, held)
    note = "re-adopted after a daemon restart; output after the restart was not captured"
    if outcome.signal == signal.SIGPIPE:
        note += "; SIGPIPE: it wrote after the daemon that read its output had died"
    return Outcome(outcome.end_reason, outcome.exit_code, outcome.signal, outcome.error or note)


async def _supervise(
    process: GroupProcess | AdoptedProcess, limits: Limits, control: RunControl
) -> EndReason | None:
    """Wait for exit, a timeout, a stop request or a log overflow; end the group if needed.
    Futures, not tasks, waited for: asyncio.wait cancels none of them."""
    exited = process.exited
    done, _ = await asyncio.wait(
        {exited, control.stop.settled(), control.overflow.settled()},
        timeout=limits.timeout,
        return_when=asyncio.FIRST_COMPLETED,
    )
    if exited in done:
        return None
    forced = (
        EndReason.STOPPED
        if control.stop.is_set()
        else EndReason.LOG_OVERFLOW
        if control.overflow.is_set()
        else EndReason.TIMEOUT
    )
    await terminate(process, exited, limits)
    return forced


async def terminate(
    process: GroupLeader,
    exited: asyncio.Future[int] | asyncio.Future[int | None],
    limits: Limits,
) -> None:
    """stop_signal to the whole group, then SIGKILL after kill_grace."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.kill_grace
    process.signal_group(limits.stop_signal)
    try:
        await asyncio.wait_for(asyncio.shield(exited), timeout=limits.kill_grace)
    except TimeoutError:
        process.signal_group(signal.SIGKILL)
        await asyncio.shield(exited)
        return
    # Members of the group that outlive the leader get the rest of the grace, then KILL.
    # No event exists for "a process group emptied": poll it, briefly.
    while process.group_alive() and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    process.signal_group(signal.SIGKILL)
