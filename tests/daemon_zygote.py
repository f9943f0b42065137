"""Test daemons forked from a process that has imported cronwarden already.

A daemon's start pays ~1 s of CPU to import cronwarden's stack (SQLAlchemy, aiohttp,
pydantic) before it reads its config; the suite starts ~400 of them, about a third of
its CPU on 2 cores.  Each test worker keeps one zygote: a process that imported
``cronwarden.daemon`` once and forks a child per daemon asked for.  The child is what
``python -m cronwarden serve -c FILE`` would be by then: its working directory, its
environment, stdin from /dev/null, stdout and stderr to the test's log file, argv as
``-m`` sets it; then it runs ``cronwarden``'s ``__main__`` and exits with its code.

What it is not: a daemon whose interpreter reads its own environment at start-up
(``PYTHON*`` variables differing from the zygote's, e.g. ``-X importtime``), one
started under a wrapper (``unshare``), or one a test measures the memory of: those
are started with ``subprocess.Popen`` as before (conftest.Daemon decides).

The zygote is the children's parent: it reaps them and tells the worker each exit
code, so ``ForkedProcess`` answers ``poll``/``wait``/``returncode`` as ``Popen`` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from typing import IO, Any


class ForkedProcess:
    """The part of ``subprocess.Popen`` the tests use, for a zygote's child."""

    def __init__(self, zygote: Zygote, pid: int, args: list[str]) -> None:
        self._zygote = zygote
        self.pid = pid
        self.args = args

    @property
    def returncode(self) -> int | None:
        return self._zygote.exits.get(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self._zygote.changed:
            if not self._zygote.changed.wait_for(lambda: self.pid in self._zygote.exits, timeout):
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self._zygote.exits[self.pid]

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:  # not reaped: the pid is still this process's
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The worker's side: asks for children, hears their exits."""

    def __init__(self) -> None:
        self.interpreter_env = _interpreter_env(os.environ)
        self._proc = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._asking = threading.Lock()
        self._spawned: queue.Queue[int | str] = queue.Queue()
        self.exits: dict[int, int] = {}
        self.changed = threading.Condition()
        threading.Thread(target=self._hear, name="zygote", daemon=True).start()

    def can_start(self, env: dict[str, str]) -> bool:
        """Whether a child with ``env`` is what a new interpreter with it would be."""
        return self._proc.poll() is None and _interpreter_env(env) == self.interpreter_env

    def spawn(self, args: list[str], cwd: str, env: dict[str, str], log: str) -> ForkedProcess:
        request = {"args": args, "cwd": cwd, "env": env, "log": log}
        assert self._proc.stdin is not None
        with self._asking:
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
            answer = self._spawned.get(timeout=30)
        if isinstance(answer, str):
            raise OSError(f"the zygote could not fork: {answer}")
        return ForkedProcess(self, answer, [sys.executable, "-m", "cronwarden", *args])

    def _hear(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            said = json.loads(line)
            if "spawned" in said:
                self._spawned.put(said["spawned"])
            else:
                with self.changed:
                    self.exits[said["pid"]] = said["code"]
                    self.changed.notify_all()


def _interpreter_env(env: Any) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("PYTHON")}


_zygote: Zygote | None = None


def zygote() -> Zygote:
    """This worker's zygote (started on first use; it ends with the worker)."""
    global _zygote
    if _zygote is None or _zygote._proc.poll() is not None:
        _zygote = Zygote()
    return _zygote


# -- the zygote process -------------------------------------------------------------


def _serve() -> None:
    import selectors

    import cronwarden.daemon  # noqa: F401  the imports every daemon pays
    from cronwarden import cli  # noqa: F401

    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    out = sys.stdout.buffer
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    pending = b""
    while True:
        for key, _ in selector.select():
            if key.fd == wake_r:
                _drain(wake_r)
                _reap(out)
                continue
            data = os.read(0, 1 << 16)
            if not data:  # the worker is gone
                os._exit(0)
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                closing = (wake_r, wake_w, selector)
                _say(out, {"spawned": _fork(json.loads(line), closing)})


def _fork(request: dict[str, Any], closing: tuple[int, int, Any]) -> int | str:
    try:
        pid = os.fork()
    except OSError as exc:
        return str(exc)
    if pid:
        return pid
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(closing[0])
        os.close(closing[1])
        closing[2].close()
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        nothing = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nothing, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(nothing)
        os.close(log)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        code = _run_main(request["args"])
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # nothing is left to tell it to
                stream.flush()
        os._exit(code)


def _run_main(args: list[str]) -> int:
    import runpy
    import traceback

    import cronwarden

    sys.argv = [os.path.join(os.path.dirname(cronwarden.__file__), "__main__.py"), *args]
    sys.path[0] = os.getcwd()  # as ``-m`` puts it
    try:
        runpy.run_module("cronwarden", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            return done.code or 0
        print(done.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _reap(out: IO[bytes]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _say(out, {"pid": pid, "code": os.waitstatus_to_exitcode(status)})


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _say(out: IO[bytes], what: dict[str, Any]) -> None:
    out.write(json.dumps(what).encode() + b"\n")
    out.flush()


if __name__ == "__main__":
    _serve()
