"""systemd: the unit passes systemd-analyze verify, and a real daemon speaks the
sd_notify protocol to a real datagram NOTIFY_SOCKET (READY=1, STATUS=, WATCHDOG=1,
STOPPING=1); its watchdog pings come from the event loop, so a blocked loop stops them."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import IN_CI, wait_for  # type: ignore[import-not-found]

from cronwarden.systemd_notify import watchdog_pings

ROOT = Path(__file__).resolve().parents[2]


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None and IN_CI and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "systemd"],
            check=True,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which("systemd-analyze")
    if found is None:
        if IN_CI:
            pytest.fail("systemd-analyze is missing and could not be installed")
        pytest.skip("systemd-analyze is not installed")
    return found


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = systemd_analyze()
    executable = shutil.which("cronwarden") or str(Path(sys.executable).parent / "cronwarden")
    printed = subprocess.run(
        [ROOT / "scripts" / "install-systemd", "--print"],
        env={**os.environ, "CRONWARDEN": executable},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"ExecStart={executable} serve -c /etc/cronwarden/cronwarden.toml" in printed
    unit = tmp_path / "cronwarden.service"
    unit.write_text(printed)
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    for line in (
        "Type=notify",
        "KillMode=mixed",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=cronwarden",
        "RuntimeDirectory=cronwarden",
        "WatchdogSec=30s",
    ):
        assert line in printed.splitlines()


class NotifySocket:
    """A datagram socket where sd_notify messages land, as systemd's would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def lines(self, prefix: str) -> list[str]:
        return [line for _, line in list(self.messages) if line.startswith(prefix)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    receiver = NotifySocket(tmp_path / "notify.sock")
    yield receiver
    receiver.close()


def test_a_real_daemon_tells_systemd_ready_status_watchdog_and_stopping(
    make_daemon, notify_socket: NotifySocket, gate
) -> None:
    daemon = make_daemon(
        f'[tasks.held]\ncommand = "{gate.wait_command}"\n[tasks.other]\ncommand = "true"\n',
        start=False,
    )
    daemon.env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1000000"}
    daemon.start()
    wait_for(lambda: notify_socket.lines("READY=1"), what="READY=1")
    assert notify_socket.lines("STATUS=2 tasks (0 paused), 0 runs active")
    assert daemon.get("/health").status == 200  # READY came once the API listened
    wait_for(lambda: len(notify_socket.lines("WATCHDOG=1")) >= 3, what="watchdog pings")
    daemon.trigger("held")
    wait_for(
        lambda: notify_socket.lines("STATUS=2 tasks (0 paused), 1 runs active"),
        what="a STATUS line with the active run",
    )
    gate.open()
    assert daemon.stop() == 0
    assert notify_socket.lines("STOPPING=1")
    ready_at = next(t for t, line in notify_socket.messages if line == "READY=1")
    stopping_at = next(t for t, line in notify_socket.messages if line == "STOPPING=1")
    assert ready_at < stopping_at


def test_watchdog_pings_come_from_the_event_loop_and_stop_while_it_is_blocked(
    notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    wedged: list[float] = []

    async def main() -> None:
        pinging = asyncio.create_task(watchdog_pings(0.1))
        await asyncio.sleep(0.5)
        wedged.append(time.monotonic())
        time.sleep(1.5)  # noqa: ASYNC251 - the loop is wedged: nothing of the daemon runs
        wedged.append(time.monotonic())
        await asyncio.sleep(0.5)
        pinging.cancel()

    asyncio.run(main())
    pings = [t for t, line in notify_socket.messages if line == "WATCHDOG=1"]
    began, ended = wedged
    assert len([t for t in pings if t < began]) >= 3
    # (a ping sent just before the loop wedged may land a moment later)
    assert [t for t in pings if began + 0.05 < t < ended] == []
    assert [t for t in pings if t >= ended]  # pings resume once the loop runs again
