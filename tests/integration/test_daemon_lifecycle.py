"""Daemon start-up and shutdown as an operator (or systemd) sees them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from conftest import signal_masks, wait_for  # type: ignore[import-not-found]


def serve_refused(config: Path) -> subprocess.CompletedProcess[str]:
    """``cronwarden serve`` expected to refuse to start (it must exit on its own)."""
    return subprocess.run(
        [sys.executable, "-m", "cronwarden", "serve", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_sigterm_gives_runs_their_grace_then_stops_them(make_daemon) -> None:
    daemon = make_daemon(
        """
    [tasks.quick]
    command = "sleep 0.5"

    [tasks.long]
    command = "sleep 60"
    """,
        shutdown_timeout="1s",
    )
    quick = daemon.trigger("quick")
    long = daemon.trigger("long")
    daemon.wait_run(long["id"], lambda r: r["status"] == "running")
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 8
    daemon.start()
    assert daemon.get(f"/api/runs/{quick['id']}").body["end_reason"] == "success"
    ended = daemon.get(f"/api/runs/{long['id']}").body
    assert (ended["status"], ended["end_reason"], ended["signal"]) == ("ended", "stopped", 15)
    first_life = (daemon.workdir / "daemon-1.log").read_text()
    assert "daemon.stopping" in first_life
    assert "Task was destroyed" not in first_life and "Traceback" not in first_life


def test_a_second_daemon_on_the_same_data_dir_is_refused(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.a]
    command = "true"
    """)
    other = daemon.config.read_text().replace(str(daemon.port), str(daemon.port + 1))
    second = daemon.workdir / "second.toml"
    second.write_text(other)
    result = serve_refused(second)
    assert result.returncode == 1
    assert "already uses data_dir" in result.stderr and "Traceback" not in result.stderr
    assert daemon.get("/health").status == 200


def test_a_broken_config_refuses_to_start_with_every_error(tmp_path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[tasks.a]\ncommand = "true"\nschedule = "nope"\ntimeout = "soon"\n')
    result = serve_refused(config)
    assert result.returncode == 2
    assert "tasks.a.schedule" in result.stderr and "tasks.a.timeout" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_busy_port_is_a_clear_error(make_daemon) -> None:
    daemon = make_daemon("""
    [tasks.a]
    command = "true"
    """)
    text = daemon.config.read_text().replace(str(daemon.data_dir), str(daemon.workdir / "d2"))
    other = daemon.workdir / "same-port.toml"
    other.write_text(text)
    result = serve_refused(other)
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{daemon.port}" in result.stderr
    assert "Task was destroyed" not in result.stderr


def test_unix_socket_listener_is_private_and_found_by_the_client(tmp_path) -> None:
    import os
    import stat

    sock = tmp_path / "run" / "api.sock"
    config = tmp_path / "c.toml"
    config.write_text(
        f'[daemon]\nlisten = "unix:{sock}"\ndata_dir = "{tmp_path / "data"}"\n'
        '[tasks.hello]\ncommand = "echo hello"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cronwarden", "serve", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        cli = [sys.executable, "-m", "cronwarden"]
        run = subprocess.run(
            [*cli, "run", "hello", "--wait", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert run.returncode == 0, run.stderr
        logs = subprocess.run(
            [*cli, "logs", run.stdout.split()[0], "--url", f"unix:{sock}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert logs.stdout == "hello\n"
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def sighup_disposed(pid: int) -> bool:
    """Whether /proc says the process ignores or catches SIGHUP (no longer dies of it)."""
    import signal

    bit = 1 << (signal.SIGHUP - 1)
    masks = signal_masks(pid)
    return bool((masks["SigIgn"] | masks["SigCgt"]) & bit)


def test_signals_during_start_up_neither_kill_nor_hang_it(make_daemon) -> None:
    import signal

    daemon = make_daemon('[tasks.a]\ncommand = "true"\n', start=False)
    daemon.start_process()
    # A reload racing the start (systemd itself queues reloads until READY=1). Only the
    # interpreter's own start, before any Python runs, is too early to guard: send it as
    # soon as the process has SIGHUP ignored or caught, not after a guessed delay.
    wait_for(lambda: sighup_disposed(daemon.proc.pid), what="SIGHUP ignored or caught")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_healthy()
    assert daemon.proc.poll() is None
    daemon.proc.send_signal(signal.SIGHUP)  # and once ready, SIGHUP reloads
    deadline = time.monotonic() + 10
    while "config.reloaded" not in daemon.log():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert daemon.stop() == 0


def test_sigterm_at_ready_with_many_tasks_ends_the_process(tmp_path: Path) -> None:
    """Stopped right after READY, with 10,000 tasks, the start-up chores (retention's
    first pass, reading last successes) are still inside queries.  They unwind before
    the store closes: closing it under them left the process hung after
    "daemon.stopped" (in two of three such stops), until systemd's stop timeout."""
    import signal
    import socket

    from conftest import Daemon  # type: ignore[import-not-found]

    tasks = "".join(
        f'[tasks.t{i:05d}]\ncommand = "true"\nschedule = "{i % 60} {i % 24} * * {i % 7}"\n'
        for i in range(10_000)
    )
    daemon = Daemon(tmp_path, tasks)
    for life in range(3):  # the hang needed a query in flight: give it three chances
        notify = tmp_path / f"notify-{life}.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(notify))
            sock.settimeout(60)
            daemon.env["NOTIFY_SOCKET"] = str(notify)
            daemon.start_process()
            assert daemon.proc is not None
            try:
                while b"READY=1" not in sock.recv(4096):
                    pass
                daemon.proc.send_signal(signal.SIGTERM)  # at once, as systemd may
                assert daemon.proc.wait(30) == 0, daemon.log()
            finally:
                daemon.proc.kill()
                daemon.proc.wait()
