"""Carrying out one run's process: the I/O half of the dispatch core.

The dispatcher decides *whether and when* a run starts and records what happened; a
``Launcher`` only runs the process and says how it ended.  Unit tests give the
dispatcher a fake launcher whose "processes" end when the test says so.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypedDict

from cronwarden.config import DEFAULT_PATH, TaskConfig
from cronwarden.errors import StartFailed
from cronwarden.host.procfs import environ_variable
from cronwarden.host.space_reserve import SpaceReserve
from cronwarden.model import EndReason
from cronwarden.run_record import RunRecord
from cronwarden.run_tokens import TOKEN_VARIABLE
from cronwarden.runlog.feeds import LogFeeds
from cronwarden.runlog.layout import index_path
from cronwarden.runlog.masking import NO_SECRETS, SecretMasker
from cronwarden.runlog.summary import LogSummary
from cronwarden.runlog.writer import LogMode, LogWriter, append_note
from cronwarden.runners.artifacts import RunArtifacts
from cronwarden.runners.containment import ContainedRun, Containment
from cronwarden.runners.cost import RunCost
from cronwarden.runners.environment import DaemonEnvironment, Reporting, run_environment
from cronwarden.runners.execute import (
    Hold,
    Limits,
    RunControl,
    StartedCallback,
    execute,
    watch_adopted,
)
from cronwarden.runners.identity import own_identity_env, resolve_identity, start_directory
from cronwarden.runners.keeping import KeeperLink
from cronwarden.runners.outcome import Outcome, runs_in_shell
from cronwarden.runners.proc_events import ExitClock
from cronwarden.runners.process import (
    AdoptedProcess,
    OutputPipe,
    ProcessSpec,
    open_fds,
)
from cronwarden.support.clock import Clock

NO_LOG = LogSummary(size=0, truncated=False)


@dataclass(frozen=True)
class Ending:
    """How a run's process ended, and what its log holds."""

    outcome: Outcome
    log: LogSummary = NO_LOG
    # Seconds between the process's exit (the kernel's clock) and now; None: it is now.
    # A daemon held up (SIGSTOP, a suspended VM) still records a run's true end.
    exited_ago: float | None = None
    cost: RunCost | None = None  # from the kernel (not known for a re-adopted run)


class Launcher(Protocol):
    # Each run's artifact directory (None: none): the launcher makes it before the
    # spawn, the run's life lists it at the end, whatever ended the run.
    artifacts: RunArtifacts | None

    async def run(
        self, run: RunRecord, task: TaskConfig, control: RunControl, on_started: StartedCallback
    ) -> Ending:
        """Spawn the run's process, call ``on_started``, supervise it to its end."""
        ...

    async def watch(
        self, run: RunRecord, task: TaskConfig, control: RunControl, process: AdoptedProcess
    ) -> Ending:
        """Supervise a process a previous daemon life started, to its end."""
        ...

    def close_inherited_log(self, run_id: str, note: str) -> LogSummary:
        """Mark and measure the log a previous daemon life was writing."""
        ...


class ProcessLauncher:
    def __init__(
        self,
        data_dir: Path,
        clock: Clock,
        *,
        default_umask: int = 0o022,
        reserve: SpaceReserve | None = None,
        feeds: LogFeeds | None = None,
        path: str = DEFAULT_PATH,  # [daemon] path: the PATH runs get
        exits: ExitClock | None = None,
        keeper: KeeperLink | None = None,
        containment: Containment | None = None,
        api_url: str | None = None,  # where runs reach the API (run_tokens.py); None: not said
        artifacts: RunArtifacts | None = None,
    ) -> None:
        self.api_url = api_url
        self.exits = exits
        self.artifacts = artifacts  # each run's own directory, made before its spawn
        self.containment = containment  # what ends every process a run leaves
        self.keeper = keeper  # holds the runs' pipes, so they outlive a daemon crash
        self.data_dir = data_dir
        self.reserve = reserve
        self.feeds = feeds or LogFeeds()
        self.default_umask = default_umask  # for tasks that set none
        self.logs_dir = data_dir / "logs"
        self.clock = clock
        # The daemon's environment and user, read once: fixed for its life (so is the
        # start directory of its own runs; a switched user's home is looked at per run).
        own = own_identity_env(os.environ)
        self._environment = DaemonEnvironment.of(os.environ, path=path, own_identity=own)
        self._own_start_dir = start_directory(own["HOME"])

    async def run(
        self, run: RunRecord, task: TaskConfig, control: RunControl, on_started: StartedCallback
    ) -> Ending:
        if self.reserve is not None and self.reserve.released:
            self.reserve.hold()  # space may be back: take the reserve again first
        masker = NO_SECRETS
        writer: LogWriter | None = None
        outcome = Outcome(EndReason.CRASHED, error="the run was interrupted")
        exited_ago: float | None = None
        cost: RunCost | None = None
        contained: ContainedRun | None = None
        try:
            spec = self._process_spec(task, run)
            if self.artifacts is not None:
                self.artifacts.prepare(run.id, spec.uid, spec.gid)
            masker = SecretMasker.for_environment(spec.env, (*task.secret_env, TOKEN_VARIABLE))
            writer = self._log_writer(run, task, control, masker)
            contained = self._contain(run, task, spec)
            outcome, exited_ago, cost = await execute(
                spec,
                limits(task),
                writer,
                control,
                on_started,
                self.exits,
                self._hold(run, task),
                contained,
            )
        except StartFailed as exc:
            outcome = Outcome(EndReason.FAILED, error=str(exc))
        finally:
            if contained is not None:
                contained.close()
            summary = writer.finish() if writer is not None else NO_LOG
        if summary.error is not None:
            outcome = _unstored_output(outcome, summary.error)
        if outcome.error is not None and masker:
            outcome = replace(outcome, error=masker.mask_text(outcome.error))
        return Ending(outcome, summary, exited_ago, cost)

    def _contain(self, run: RunRecord, task: TaskConfig, spec: ProcessSpec) -> ContainedRun | None:
        if self.containment is None:
            return None
        uid = spec.uid if spec.uid is not None else os.geteuid()
        return self.containment.enter(run.id, self.containment.plan(task.limits, uid))

    def _log_writer(
        self, run: RunRecord, task: TaskConfig, control: RunControl, masker: SecretMasker
    ) -> LogWriter:
        return LogWriter(
            index_path(self.logs_dir, run.id), **self._writer_options(run, task, control, masker)
        )

    def _writer_options(
        self, run: RunRecord, task: TaskConfig, control: RunControl, masker: SecretMasker
    ) -> WriterOptions:
        return WriterOptions(
            max_size=task.max_log_size,
            mode=task.log_on_full,
            now=self.clock.now,
            masker=masker,
            on_full=control.overflow.set if task.log_on_full == "kill" else None,
            on_disk_full=self.reserve.release if self.reserve is not None else None,
            on_written=functools.partial(self.feeds.notify, run.id),
        )

    async def watch(
        self, run: RunRecord, task: TaskConfig, control: RunControl, process: AdoptedProcess
    ) -> Ending:
        bounds = limits(task)
        if bounds.timeout is not None and run.start_at is not None:
            elapsed = (self.clock.now() - run.start_at).total_seconds()
            bounds = replace(bounds, timeout=max(0.0, bounds.timeout - elapsed))
        writer = self._resumed_log(run, task, control, process)
        outputs = []
        if writer is not None:
            outputs = [
                OutputPipe(fd, name, writer.feed)
                for fd, name in zip(process.pipes, STREAMS, strict=True)
            ]
        release = self._hold_adopted(run, task, process, outputs)
        contained = self.containment.rejoin(run.id) if self.containment is not None else None
        try:
            outcome = await watch_adopted(
                process,
                bounds,
                control,
                via_shell=runs_in_shell(task.argv),
                outputs=outputs,
                contained=contained,
            )
        except asyncio.CancelledError:
            # Let go by a failed start-up: the keeper holds on for the next life.
            for pipe in outputs:
                pipe.close()
            if writer is not None:
                writer.finish()
            raise
        except Exception:
            release()
            if writer is None:
                self.close_inherited_log(run.id, "the run was interrupted")
            else:
                writer.finish()
            raise
        release()
        if contained is not None:
            contained.close()
        if writer is not None:
            return Ending(outcome, writer.finish())
        note = outcome.error or "re-adopted after a daemon restart"
        return Ending(outcome, self.close_inherited_log(run.id, note))

    def _resumed_log(
        self, run: RunRecord, task: TaskConfig, control: RunControl, process: AdoptedProcess
    ) -> LogWriter | None:
        """A writer that goes on with the log of a re-adopted run whose keeper held its
        pipes (None: none held them, or its log cannot be continued)."""
        if not process.pipes:
            return None
        try:
            env = self._process_spec(task, run).env
            # Its token is the one it was started with: only its process still knows it.
            env.update(inherited_token(process.pid))
            masker = SecretMasker.for_environment(env, (*task.secret_env, TOKEN_VARIABLE))
        except StartFailed:  # its user is gone since: its secrets cannot be known
            masker = NO_SECRETS
        writer = LogWriter.resume(
            index_path(self.logs_dir, run.id),
            note="the daemon restarted; the output went on being captured",
            **self._writer_options(run, task, control, masker),
        )
        if writer is None:
            for fd in process.pipes:
                os.close(fd)
        return writer

    def _hold(self, run: RunRecord, task: TaskConfig) -> Hold | None:
        if self.keeper is None:
            return None
        return lambda process: self._keep(run, task, process.pid, process.outputs)

    def _hold_adopted(
        self, run: RunRecord, task: TaskConfig, process: AdoptedProcess, outputs: list[OutputPipe]
    ) -> Callable[[], None]:
        if self.keeper is None or not outputs:
            return _nothing
        return self._keep(run, task, process.pid, outputs)

    def _keep(
        self, run: RunRecord, task: TaskConfig, pid: int, outputs: list[OutputPipe]
    ) -> Callable[[], None]:
        """Hand the run's pipes to the keeper (spawned or re-adopted alike)."""
        assert self.keeper is not None
        return self.keeper.hold(
            run.id,
            pid,
            functools.partial(open_fds, outputs),
            stop_signal=task.stop_signal,
            kill_grace=task.kill_grace.total_seconds(),
        )

    def close_inherited_log(self, run_id: str, note: str) -> LogSummary:
        return append_note(index_path(self.logs_dir, run_id), note, self.clock.now())

    def _process_spec(self, task: TaskConfig, run: RunRecord) -> ProcessSpec:
        identity = resolve_identity(task.user, task.group)
        user_env = identity.env or None  # None: the daemon's own user
        env = run_environment(
            task,
            daemon=self._environment,
            run_id=run.id,
            attempt=run.attempt,
            scheduled_for=run.scheduled_for,
            params=run.params,
            identity=user_env,
            reporting=None if self.api_url is None else Reporting(run.report_token, self.api_url),
            artifacts_dir=None if self.artifacts is None else self.artifacts.dir_of(run.id),
        )
        if task.working_dir is not None:
            cwd = task.working_dir
        elif user_env is None:
            cwd = self._own_start_dir
        else:
            cwd = start_directory(user_env["HOME"])
        return ProcessSpec(
            argv=task.argv,
            env=env,
            cwd=cwd,
            uid=identity.uid,
            gid=identity.gid,
            groups=identity.groups,
            umask=task.umask if task.umask is not None else self.default_umask,
        )


STREAMS = ("stdout", "stderr")


class WriterOptions(TypedDict):
    """How a run's log is written (LogWriter's keywords), new or resumed."""

    max_size: int
    mode: LogMode
    now: Callable[[], datetime]
    masker: SecretMasker
    on_full: Callable[[], None] | None
    on_disk_full: Callable[[str], None] | None
    on_written: Callable[[int], None] | None


def _nothing() -> None:
    pass


def inherited_token(pid: int) -> dict[str, str]:
    """The report token in the environment a process was started with (a run adopted
    from a previous daemon life), to be masked in its log as before; empty when it is
    not readable (gone, another user's)."""
    token = environ_variable(f"/proc/{pid}/environ", TOKEN_VARIABLE)
    if token is None:
        return {}
    return {TOKEN_VARIABLE: token.decode("utf-8", "surrogateescape")}


def _unstored_output(outcome: Outcome, error: str) -> Outcome:
    """A run whose output could not be kept did not succeed as far as anyone can tell."""
    reason = EndReason.FAILED if outcome.end_reason == EndReason.SUCCESS else outcome.end_reason
    text = error if outcome.error is None else f"{outcome.error}; {error}"
    return Outcome(reason, outcome.exit_code, outcome.signal, text)


def limits(task: TaskConfig) -> Limits:
    return Limits(
        timeout=task.timeout.total_seconds() or None,
        stop_signal=task.stop_signal,
        kill_grace=task.kill_grace.total_seconds(),
        success_exit_codes=task.success_exit_codes,
    )
