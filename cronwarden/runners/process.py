"""Spawning a task's process in its own process group, with pipes the runner owns.

The runner creates the stdout/stderr pipes itself instead of asking asyncio for them:
on Python 3.11 ``Process.wait()`` does not return until every pipe is closed, so a
grandchild that escaped into the background while holding them would keep a run
"running" forever.  With our own pipes, the exit of the main process and the draining
of its output are separate, and the output can be abandoned after a short grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cronwarden.errors import StartFailed
from cronwarden.host.procfs import read_proc
from cronwarden.host.subreaper import disown_child, own_child
from cronwarden.runners.cost import RunCost, spawner_peak

READ_CHUNK = 256 * 1024
# A pipe holds 64 KiB by default; one that fills up has a fast producer behind it and
# is grown so each wake-up reads up to a MiB.  Only such pipes: growing every pipe of a
# burst would pass the per-user pipe quota (pipe-user-pages-soft), past which the
# kernel gives every new pipe of that user a single page.
DEFAULT_PIPE_BYTES = 64 * 1024
FAST_PIPE_BYTES = 1 << 20


@dataclass(frozen=True)
class ProcessSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    uid: int | None = None
    gid: int | None = None
    groups: list[int] | None = None
    umask: int | None = None


class GroupLeader:
    """Signalling a process group by its leader's pid (the leader may already be gone)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def signal_group(self, signum: int) -> None:
        """Signal every process of the group; a group already gone is not an error."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def group_alive(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True


class GroupProcess(GroupLeader):
    """A started process that leads its own process group.

    Its exit is watched through a pidfd registered with the event loop (no thread, no
    asyncio subprocess transport: the runner owns the pipes, and at a burst of a
    thousand starts the transport's bookkeeping cost as much as the fork itself).
    """

    def __init__(
        self, popen: subprocess.Popen[bytes], outputs: list[OutputPipe], inherited_peak: int
    ) -> None:
        super().__init__(popen.pid)
        self._inherited_peak = inherited_peak  # the daemon's, when it spawned this
        self._popen = popen
        self.outputs = outputs
        loop = asyncio.get_running_loop()
        # Its return code once reaped; shared: wait for it through wait() or a shield.
        self.exited: asyncio.Future[int] = loop.create_future()
        self.cost: RunCost | None = None  # set once reaped
        self._pidfd = os.pidfd_open(popen.pid)
        loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        """Reap with ``wait4``: the exit status and what the run cost, at once."""
        try:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped already: its status is Popen's
            returncode = self._popen.poll()
        else:
            if pid == 0:  # woken early; the pidfd stays readable once it exits
                return
            returncode = os.waitstatus_to_exitcode(status)
            self._popen.returncode = returncode  # Popen must not wait for it again
            self.cost = RunCost.of(usage, self._inherited_peak)
        if returncode is None:
            return
        disown_child(self.pid)
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        if not self.exited.done():
            self.exited.set_result(returncode)

    async def wait(self) -> int | None:
        return await asyncio.shield(self.exited)

    def start_ticks(self) -> int | None:
        """The process start time from /proc, read only while the child is unreaped:
        until then its pid cannot name another process."""
        if self._popen.returncode is not None:
            return None
        stat = proc_stat(self.pid)
        return stat.start_ticks if stat is not None else None

    async def drain(self, grace: float) -> bool:
        return await drain(self.outputs, grace)


class AdoptedProcess(GroupLeader):
    """A run's process left by a previous daemon life; not our child any more.
    ``pipes``: its output pipes' read ends (stdout, stderr) where its keeper held them
    (runners/keeping.py), so its output goes on being read."""

    def __init__(
        self, pid: int, exited: asyncio.Future[int | None], pipes: tuple[int, ...] = ()
    ) -> None:
        super().__init__(pid)
        self.exited = exited
        self.pipes = pipes

    async def wait(self) -> int | None:
        """The return code (negative for a signal), or None if it cannot be known."""
        return await asyncio.shield(self.exited)


# Runs first when the process must be placed before it runs (``placed``): a shell that
# reads its script from stdin, which the daemon writes once the process is placed: exec
# the rest with stdin from /dev/null.  Not ``sh -c 'read ...; exec ...'``: dash catches
# SIGINT under -c, and a SIGINT that came between the read and the exec (a stop of a
# task whose stop_signal is SIGINT, sent the moment the run showed as running) was
# caught by the shell and lost with it at the exec; the run was killed after its
# kill_grace instead.  Reading its script, the shell leaves every signal as it was.
WAIT_TO_BE_PLACED = ("/bin/sh", "-s", "--")
PLACED = b'exec "$@" </dev/null\n'


def spawn(
    spec: ProcessSpec,
    on_output: Callable[[str, bytes], None],
    prefix: Sequence[str] = (),
    placed: Callable[[int], None] | None = None,
) -> GroupProcess:
    """Start the process (from inside the event loop); raises StartFailed with a
    readable reason.  Plain, not async: the fork-exec blocks the loop briefly either
    way (asyncio's own subprocess support does the same), and nothing here awaits.
    ``prefix``: a program that execs the command after setting up its process (prlimit).
    ``placed``: called with the pid before the command runs (it moves the process into
    its cgroup, so that nothing it forks is born outside)."""
    _check_start(spec, prefixed=bool(prefix))
    inherited_peak = spawner_peak()
    gate = os.pipe() if placed is not None else None
    argv = [*(WAIT_TO_BE_PLACED if gate is not None else ()), *prefix, *spec.argv]
    pipes = [os.pipe(), os.pipe()]
    try:
        popen = subprocess.Popen(
            argv,
            stdin=gate[0] if gate is not None else subprocess.DEVNULL,
            stdout=pipes[0][1],
            stderr=pipes[1][1],
            cwd=spec.cwd,
            env=spec.env,
            start_new_session=True,
            user=spec.uid,
            group=spec.gid,
            extra_groups=spec.groups,
            umask=-1 if spec.umask is None else spec.umask,
        )
    except BaseException as exc:
        for read_fd, write_fd in [*pipes, *([gate] if gate is not None else [])]:
            os.close(read_fd)
            os.close(write_fd)
        if isinstance(exc, OSError):
            raise StartFailed(_start_error(spec, exc)) from exc
        if isinstance(exc, ValueError):  # e.g. a NUL byte in the environment
            raise StartFailed(f"cannot start {spec.argv[0]}: {exc}") from exc
        raise
    own_child(popen.pid)
    if gate is not None and placed is not None:
        os.close(gate[0])
        try:
            placed(popen.pid)
        finally:
            # A process already gone (stopped or killed while it was placed) has left
            # the pipe: its exit is reaped and recorded like any other.
            with contextlib.suppress(BrokenPipeError):
                os.write(gate[1], PLACED)
            os.close(gate[1])
    outputs = []
    for (read_fd, write_fd), stream in zip(pipes, ("stdout", "stderr"), strict=True):
        os.close(write_fd)
        outputs.append(OutputPipe(read_fd, stream, on_output))
    return GroupProcess(popen, outputs, inherited_peak)


def open_fds(outputs: list[OutputPipe]) -> list[int]:
    return [pipe.fd for pipe in outputs if pipe.fd is not None]


async def drain(outputs: list[OutputPipe], grace: float) -> bool:
    """Wait up to ``grace`` s for the output to end; True if something still held it."""
    _, pending = await asyncio.wait([pipe.ended for pipe in outputs], timeout=grace)
    for pipe in outputs:
        pipe.close()
    return bool(pending)


class OutputPipe:
    """The read end of one of a run's output pipes, read straight from the event loop's
    selector: one large non-blocking read per wake-up, no task, no transport (a
    StreamReader task per stream cost as much as the fork in a burst of starts)."""

    def __init__(self, fd: int, stream: str, on_output: Callable[[str, bytes], None]) -> None:
        self._fd: int | None = fd
        self._grown = False
        self.stream = stream
        self._on_output = on_output
        loop = asyncio.get_running_loop()
        self.ended: asyncio.Future[None] = loop.create_future()
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    @property
    def fd(self) -> int | None:
        """The read end, while it is read."""
        return self._fd

    def _readable(self) -> None:
        if self._fd is None:
            return
        try:
            chunk = os.read(self._fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""  # the pipe failed: as good as ended
        if chunk:
            if len(chunk) >= DEFAULT_PIPE_BYTES and not self._grown:
                self._grown = True
                with contextlib.suppress(OSError):  # over pipe-max-size or the quota
                    fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, FAST_PIPE_BYTES)
            self._on_output(self.stream, chunk)
        else:
            self.close()

    def close(self) -> None:
        """Stop reading (end of output, or abandoned after the drain grace)."""
        if self._fd is None:
            return
        asyncio.get_running_loop().remove_reader(self._fd)
        os.close(self._fd)
        self._fd = None
        if not self.ended.done():
            self.ended.set_result(None)


def _check_start(spec: ProcessSpec, *, prefixed: bool = False) -> None:
    """Catch the common start failures before forking, with messages operators can act on.
    ``prefixed``: the command is exec'd by another program, so a missing one is looked
    for here (the exec's own error would only be that program's exit code)."""
    if not spec.cwd.exists():
        raise StartFailed(f"working_dir {spec.cwd} does not exist")
    if not spec.cwd.is_dir():
        raise StartFailed(f"working_dir {spec.cwd} is not a directory")
    program = spec.argv[0]
    if prefixed and shutil.which(program, path=spec.env.get("PATH", os.defpath)) is None:
        with_cwd = (spec.cwd / program) if "/" in program else None
        if with_cwd is None or not with_cwd.exists():
            raise StartFailed(f"command not found: {program}")
        raise StartFailed(f"permission denied: {program} is not executable by the run's user")


def _start_error(spec: ProcessSpec, exc: OSError) -> str:
    program = spec.argv[0]
    if exc.errno == errno.ENOENT:
        if exc.filename is not None and str(exc.filename) == str(spec.cwd):
            return f"working_dir {spec.cwd} does not exist"
        return f"command not found: {program}"
    if exc.errno == errno.EACCES:
        return f"permission denied: {program} is not executable by the run's user"
    if exc.errno == errno.ENOEXEC:
        return f"exec format error: {program} is not a program (missing #! line?)"
    return f"cannot start {program}: {os.strerror(exc.errno or 0) or exc}"


@dataclass(frozen=True)
class ProcStat:
    state: str
    start_ticks: int  # clock ticks since boot: with the pid, it names one process
    exit_status: int  # wait(2) status; meaningful once the process is a zombie

    @property
    def is_zombie(self) -> bool:
        return self.state == "Z"

    @property
    def returncode(self) -> int:
        """As asyncio reports it: negative for a signal."""
        signum = self.exit_status & 0x7F
        return -signum if signum else (self.exit_status >> 8) & 0xFF


def proc_stat(pid: int) -> ProcStat | None:
    """What /proc/PID/stat says of a process (fields 3, 22 and 52), None if it is gone.

    A zombie nobody reaped still has its pid and start time, and keeps its exit status
    in field 52: a restarted daemon can read the real outcome of such a run.
    """
    stat = read_proc(f"/proc/{pid}/stat")
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 50:
        return None
    return ProcStat(fields[0].decode(), int(fields[19]), int(fields[49]))
