"""What every benchmark needs: a real daemon on a free port, and its API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

# The daemon stops (SIGTERM) when the script that started it dies: a script killed by
# a test's timeout would otherwise leave its daemons running, loading what runs next.
WITH_THIS_SCRIPT = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # say what the daemon refused, and why
        why = f"{exc.msg}: {exc.read().decode(errors='replace')}"
        raise urllib.error.HTTPError(url, exc.code, why, exc.headers, None) from exc


def post(url: str) -> Any:
    # JSON, as the daemon asks of a POST (an empty form body would be refused: 415).
    request = urllib.request.Request(
        url, data=b"{}", method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def z(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@contextmanager
def running_daemon(
    workdir: Path,
    config: Path,
    *,
    profile: Path | None = None,
    trace_memory: tuple[Path, int] | None = None,
    stalls_log: Path | None = None,
    source: Path | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``cronwarden serve`` until the block ends; yields its base URL and process.
    ``source``: a cronwarden source tree to run instead of the installed package.

    With ``profile``, the daemon runs under ``_profiled.py``: cProfile from a SIGUSR1
    until a SIGUSR2, which writes the profile there.  With ``trace_memory`` (a prefix,
    tracemalloc's frames), under ``_memtraced.py``: each SIGUSR1 accounts for its memory
    in files beside that prefix.  With ``stalls_log``, under ``_stalls_timed.py``: each
    full garbage collection and each loop step over 20 ms is a line there."""
    base = _listen_url(config)
    log = open(workdir / "daemon.log", "wb")  # noqa: SIM115
    program = ["-m", "cronwarden"]
    if profile is not None:
        program = [str(Path(__file__).with_name("_profiled.py")), str(profile)]
    if trace_memory is not None:
        prefix, frames = trace_memory
        program = [str(Path(__file__).with_name("_memtraced.py")), str(prefix), str(frames)]
    if stalls_log is not None:
        program = [str(Path(__file__).with_name("_stalls_timed.py")), str(stalls_log)]
    proc = subprocess.Popen(
        [*WITH_THIS_SCRIPT, sys.executable, *program, "serve", "-c", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=None if source is None else {**os.environ, "PYTHONPATH": str(source)},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(f"{base}/health")["status"] == "ok":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"daemon did not start; see {workdir / 'daemon.log'}")
            time.sleep(0.1)
        yield base, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()


@contextmanager
def ready_daemon(
    python: str, workdir: Path, config: Path
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """``cronwarden serve`` on ``python`` until the block ends, once it said READY=1 on
    a real NOTIFY_SOCKET (as systemd hears it); yields the process and the seconds from
    its start to READY."""
    notify = workdir / "notify.sock"
    notify.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(600)  # 100,000 tasks on a loaded machine: minutes
    began = time.monotonic()
    proc = subprocess.Popen(
        [python, "-m", "cronwarden", "serve", "-c", str(config)],
        stdout=open(workdir / "daemon.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        env={**os.environ, "NOTIFY_SOCKET": str(notify)},
    )
    try:
        while b"READY=1" not in sock.recv(4096):
            pass
        yield proc, time.monotonic() - began
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(300)  # a stop with 100,000 tasks took 33 s under load
        sock.close()


def _listen_url(config: Path) -> str:
    for line in config.read_text().splitlines():
        if line.startswith("listen = "):
            return "http://" + line.split("=", 1)[1].strip().strip('"')
    raise SystemExit(f"{config} has no listen line")


@contextmanager
def profiled(proc: Any, target: Path | None) -> Iterator[None]:
    """The daemon's profile (``_profiled.py``) taken while the block runs."""
    if target is not None:
        proc.send_signal(signal.SIGUSR1)
    try:
        yield
    finally:
        if target is not None:
            proc.send_signal(signal.SIGUSR2)
            deadline = time.time() + 60
            while not target.exists() and time.time() < deadline:
                time.sleep(0.2)
