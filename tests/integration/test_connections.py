"""Idle and half-open connections against a daemon with few file descriptors: the API
stays answerable, runs still start, and the idle connections are closed in time."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cronwarden.api.connections import IDLE_TIMEOUT, connection_cap

FD_LIMIT = 256
HELD = 320  # more connections than the daemon has descriptors


def low_fd_daemon(workdir: Path, tasks: str, fd_limit: int = FD_LIMIT) -> Any:
    """A daemon started with only ``fd_limit`` file descriptors (soft and hard)."""
    from conftest import Daemon  # type: ignore[import-not-found]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    class LowFdDaemon(Daemon):  # type: ignore[misc]
        def start_process(self) -> None:
            self.lives += 1
            log = open(self.workdir / f"daemon-{self.lives}.log", "wb")  # noqa: SIM115
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cronwarden", "serve", "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, **self.env},
                preexec_fn=limit,
            )

    return LowFdDaemon(workdir, tasks)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Any]:
    d = low_fd_daemon(tmp_path, '[tasks.work]\ncommand = "echo done"\n').start()
    yield d
    if d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait(10)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def hold(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that never finish a request: half send nothing, half a
    request head cut short (slowloris)."""
    held = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2:
            sock.sendall(b"GET /api/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sock.setblocking(False)
        held.append(sock)
    return held


def closed_by_daemon(sock: socket.socket) -> bool:
    """True once the daemon closed it (whatever it said first)."""
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


@pytest.mark.faults  # the fd limit (issue 24)
def test_idle_connections_cannot_exhaust_the_daemons_descriptors(daemon) -> None:
    from conftest import wait_for  # type: ignore[import-not-found]

    held = hold(daemon.port, HELD)
    try:
        assert open_fds(daemon.proc.pid) < FD_LIMIT - 32
        for _ in range(5):
            health = daemon.get("/health")
            assert health.status == 200, health
        runs = [daemon.trigger("work")["id"] for _ in range(5)]
        for run_id in runs:
            run = daemon.wait_run(run_id)
            assert run["end_reason"] == "success", run
        assert open_fds(daemon.proc.pid) < FD_LIMIT - 32
        # Every held connection is closed: at once beyond the cap, the rest by the
        # header timeout, however long the test would hold them.
        wait_for(
            lambda: all(closed_by_daemon(s) for s in held),
            timeout=IDLE_TIMEOUT + 15,
            what="every idle connection closed by the daemon",
        )
    finally:
        for sock in held:
            with contextlib.suppress(OSError):
                sock.close()
    assert daemon.get("/health").status == 200
    log = daemon.log()
    assert "Too many open files" not in log
    full = log.count("api.connections_full")
    assert 1 <= full <= 2, full  # rate-limited: once, perhaps twice across a minute boundary


@pytest.mark.faults  # the fd limit (issue 24)
def test_a_flood_met_by_a_starved_daemon_stays_within_its_descriptors(tmp_path: Path) -> None:
    """The daemon is stopped while a flood of connections queues in the kernel; when it
    wakes, it accepts them a batch at a time, never more than its descriptors allow."""
    d = low_fd_daemon(tmp_path, '[tasks.work]\ncommand = "echo done"\n', fd_limit=128)
    d.start()
    flood: list[socket.socket] = []
    try:
        _flood_a_starved(d, flood)
        assert "Too many open files" not in d.log()
        assert d.stop() == 0, d.log()
    finally:
        for sock in flood:
            sock.close()
        if d.proc.poll() is None:  # a failure above: leave no daemon behind
            d.proc.kill()
            d.proc.wait(10)


def _flood_a_starved(d: Any, flood: list[socket.socket]) -> None:
    """200 connects queue in the kernel while the daemon is stopped; once woken it
    answers /health and runs a task."""
    from conftest import wait_for  # type: ignore[import-not-found]

    os.kill(d.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(200):
            sock = socket.socket()
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", d.port))
            flood.append(sock)
    finally:
        os.kill(d.proc.pid, signal.SIGCONT)
    wait_for(lambda: _health(d) == 200, what="/health answered through the flood")
    run = d.wait_run(d.trigger("work")["id"])
    assert run["end_reason"] == "success", run


def test_a_busy_table_answers_503_and_nothing_crashes(tmp_path: Path) -> None:
    """When every connection is busy (event followers), a new one is answered 503 at once."""
    d = low_fd_daemon(tmp_path, '[tasks.work]\ncommand = "true"\n').start()
    followers = []
    try:
        for _ in range(connection_cap(FD_LIMIT)):
            sock = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            followers.append(sock)
        for sock in followers:  # each stream has started: its request is in progress
            assert b"200 OK" in sock.recv(4096)
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as extra:
            answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"too-many-connections" in answer
        for sock in followers[:2]:
            sock.close()
        from conftest import wait_for  # type: ignore[import-not-found]

        wait_for(lambda: _health(d) == 200, what="a place once two followers left")
    finally:
        for sock in followers:
            sock.close()
        assert d.stop() == 0, d.log()


def _health(daemon: Any) -> int:
    try:
        return int(daemon.get("/health").status)
    except OSError:
        return 0


def test_a_live_follower_outlasts_the_idle_timeout(tmp_path: Path) -> None:
    from conftest import Daemon, wait_for  # type: ignore[import-not-found]

    d = Daemon(tmp_path, '[tasks.work]\ncommand = "true"\n').start()
    try:
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as sock:
            sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            seen = bytearray(sock.recv(4096))
            assert b"200 OK" in seen
            sock.settimeout(0.5)

            def read() -> bytes:
                with contextlib.suppress(TimeoutError):
                    chunk = sock.recv(65536)
                    assert chunk, "the daemon closed a live stream"
                    seen.extend(chunk)
                return bytes(seen)

            started = time.monotonic()
            wait_for(
                lambda: read() and time.monotonic() - started > IDLE_TIMEOUT + 2,
                timeout=IDLE_TIMEOUT + 10,
                what="a quiet stream kept past the idle timeout",
            )
            run = d.trigger("work")
            wait_for(lambda: run["id"].encode() in read(), what="the run's event")
    finally:
        assert d.stop() == 0, d.log()
