"""Start-up recovery of runs a previous daemon life left behind, with real processes:
a zombie nobody reaped still tells its exit status; a process that is gone (reaped
by init) ends crashed, saying so; a waiting retry waits again; a fire reserved ahead
of its instant is deleted if the instant has not come, and crashed if it has."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path

from dispatch_doubles import Rig, rig, settle  # type: ignore[import-not-found]

from cronwarden.model import EndReason, Run, Status, Trigger
from cronwarden.reservations import reserve
from cronwarden.runners.adoption import ExitWatcher
from cronwarden.runners.launch import ProcessLauncher
from cronwarden.runners.process import proc_stat
from cronwarden.runners.recovery import recover

TASK = '[tasks.job]\ncommand = "true"\nretries = 1\nretry_delay = "5s"\nretry_on = ["crashed"]\n'


def left_running(r: Rig, pid: int, proc_started: int | None):  # type: ignore[no-untyped-def]
    """A run row as a daemon that died would have left it."""
    run = r.new_run(r.live.task("job"), Trigger.API)
    run.change(
        {"status": Status.RUNNING, "pid": pid, "start_at": r.clock.at, "proc_started": proc_started}
    )
    r.store.plant(run)
    return run


def with_real_launcher(tasks: str, tmp_path: Path) -> Rig:
    return rig(tasks, launcher=lambda clock: ProcessLauncher(tmp_path, clock))


async def recovered(r: Rig, taken_over: tuple[Run, ...] = ()) -> ExitWatcher | None:
    """Start-up recovery as the daemon runs it, on what the store holds."""
    runs = await r.store.unfinished_runs("n1")
    return await recover(r.dispatcher, runs, now=r.clock.now(), taken_over=taken_over)


def zombie(code: int) -> subprocess.Popen[bytes]:
    """A child that exited with ``code`` and that nobody reaped yet."""
    child = subprocess.Popen(["sh", "-c", f"exit {code}"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # wait, but leave the zombie
    return child


def gone() -> tuple[int, int]:
    """(pid, start ticks) of a process that ended and was reaped."""
    child = subprocess.Popen(["true"])
    stat = proc_stat(child.pid)
    child.wait()
    return child.pid, stat.start_ticks if stat else 1


async def test_a_zombie_left_behind_reports_its_real_exit_status(tmp_path: Path) -> None:
    r = with_real_launcher(TASK, tmp_path)
    child = zombie(3)
    stat = proc_stat(child.pid)
    assert stat is not None and stat.is_zombie
    run = left_running(r, child.pid, stat.start_ticks)
    watcher = await recovered(r)
    try:
        for _ in range(200):
            await settle()
            if r.store.runs[run.id].status == Status.ENDED:
                break
        ended = r.store.runs[run.id]
        assert (ended.end_reason, ended.exit_code) == (EndReason.FAILED, 3)
        assert "re-adopted" in (ended.error or "")
    finally:
        if watcher is not None:
            watcher.close()
        child.wait()


async def test_a_process_that_is_gone_ends_crashed_and_retries(tmp_path: Path) -> None:
    r = with_real_launcher(TASK, tmp_path)
    pid, ticks = gone()  # as if init had reaped it while no daemon was up
    run = left_running(r, pid, ticks)
    await recovered(r)
    await settle()
    ended = r.store.runs[run.id]
    assert ended.end_reason == EndReason.CRASHED and "was gone" in (ended.error or "")
    retry = [x for x in r.store.runs.values() if x.retry_of == run.id]
    assert len(retry) == 1 and retry[0].status == Status.PENDING  # crashed retries by policy
    assert retry[0].not_before == r.clock.at + timedelta(seconds=5)


async def test_a_waiting_retry_waits_again_then_runs() -> None:
    r = rig(TASK)
    left = r.new_run(r.live.task("job"), Trigger.RETRY, attempt=2)
    left.change({"not_before": r.clock.at + timedelta(seconds=5)})
    r.store.plant(left)
    await recovered(r)
    await settle()
    assert r.launcher.started == []

    async def advance() -> None:
        r.clock.advance(timedelta(seconds=5))

    await advance()
    await settle()
    assert r.launcher.started == [left.id]


def reserved_fire(r: Rig, instant_in: timedelta):  # type: ignore[no-untyped-def]
    """A scheduled fire's row as the scheduler commits it ahead of its instant."""
    instant = r.clock.at + instant_in
    run = reserve(r.new_run(r.live.task("job"), Trigger.SCHEDULE, scheduled_for=instant), instant)
    r.store.plant(run)
    return run


async def test_a_fire_reserved_for_an_instant_still_ahead_is_deleted_not_run() -> None:
    r = rig(TASK)
    run = reserved_fire(r, timedelta(milliseconds=200))
    await recovered(r)
    await settle()
    assert run.id not in r.store.runs  # the scheduler times this fire again
    r.clock.advance(timedelta(seconds=1))
    await settle()
    assert r.launcher.started == []


async def test_a_fire_reserved_for_an_instant_that_came_ends_crashed_and_retries() -> None:
    r = rig(TASK)
    run = reserved_fire(r, timedelta(milliseconds=-200))  # the daemon died around it
    await recovered(r)
    await settle()
    ended = r.store.runs[run.id]
    assert ended.status == Status.ENDED and ended.end_reason == EndReason.CRASHED
    assert "before the run started" in (ended.error or "")
    assert [x.attempt for x in r.store.runs.values() if x.retry_of == run.id] == [2]
    assert r.launcher.started == []
