"""systemd: the unit passes systemd-analyze verify, install-systemd installs no task
that would run as root by surprise, and a real daemon speaks the sd_notify protocol to
a real datagram NOTIFY_SOCKET (READY=1, STATUS=, WATCHDOG=1, STOPPING=1); its watchdog
pings come from the event loop, so a blocked loop stops them."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import IN_CI, wait_for  # type: ignore[import-not-found]

from cronwarden.host.sd_notify import watchdog_pings

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


INSTALL = ROOT / "scripts" / "install-systemd"
EXECUTABLE = shutil.which("cronwarden") or str(Path(sys.executable).parent / "cronwarden")


def install_systemd(*args: str, destdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CRONWARDEN": EXECUTABLE}
    if destdir is not None:
        env["DESTDIR"] = str(destdir)
    return subprocess.run([INSTALL, *args], env=env, capture_output=True, text=True)


def directives(unit: str) -> dict[str, list[str]]:
    """Each key's values, space-separated lists split, comments left out."""
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).extend(value.split())
    return found


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = systemd_analyze()
    executable = EXECUTABLE
    printed = install_systemd("--print").stdout
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


def test_the_unit_waits_for_users_and_remote_homes_and_keeps_devices() -> None:
    """Ordered as Debian's cron.service (LDAP users, NFS homes); no ProtectClock=,
    which before systemd 253 took every device but the RTC from the tasks."""
    unit = directives((ROOT / "systemd" / "cronwarden.service").read_text())
    after = set(unit["After"])
    assert {"network-online.target", "remote-fs.target", "nss-user-lookup.target"} <= after
    assert "ProtectClock" not in unit
    assert "DeviceAllow" not in unit and "DevicePolicy" not in unit


def test_the_unit_delegates_a_cgroup_the_daemon_may_write() -> None:
    """Runs get cgroups of their own under a delegated unit; ProtectControlGroups=yes
    would make the delegated subtree read-only too."""
    unit = directives((ROOT / "systemd" / "cronwarden.service").read_text())
    assert unit["Delegate"] == ["yes"]
    assert "ProtectControlGroups" not in unit


def test_install_systemd_writes_a_config_with_no_active_task(tmp_path: Path) -> None:
    systemd_analyze()
    printed = install_systemd("--print-config")
    assert printed.returncode == 0, printed.stderr
    config = tomllib.loads(printed.stdout)
    assert "tasks" not in config and "daemon" in config
    assert "[tasks.hello]" in (ROOT / "config.example.toml").read_text()
    assert "# [tasks.hello]" in printed.stdout  # there to read, commented out

    done = install_systemd(destdir=tmp_path)
    assert done.returncode == 0, done.stderr
    installed = tmp_path / "etc" / "cronwarden" / "cronwarden.toml"
    assert installed.read_text() == printed.stdout
    assert oct(installed.stat().st_mode & 0o777) == "0o640"
    assert "OK (0 tasks)" in done.stdout
    unit = (tmp_path / "etc" / "systemd" / "system" / "cronwarden.service").read_text()
    assert f"ExecStart={EXECUTABLE} serve -c /etc/cronwarden/cronwarden.toml" in unit


def test_install_systemd_installs_a_given_config_only_when_it_is_valid(tmp_path: Path) -> None:
    systemd_analyze()
    installed = tmp_path / "etc" / "cronwarden" / "cronwarden.toml"
    mine = tmp_path / "mine.toml"
    mine.write_text('[tasks.backup]\ncommand = "true"\nuser = "nobody"\n')
    done = install_systemd(str(mine), destdir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert installed.read_text() == mine.read_text()

    broken = tmp_path / "broken.toml"
    broken.write_text("[tasks.backup]\ncommand = 5\n")
    refused = install_systemd(str(broken), destdir=tmp_path)
    assert refused.returncode == 1
    assert (
        f"{broken} was not installed" in refused.stderr and "tasks.backup.command" in refused.stderr
    )
    assert installed.read_text() == mine.read_text()  # the working file is kept
    assert sorted(p.name for p in installed.parent.iterdir()) == ["cronwarden.toml"]

    again = install_systemd(destdir=tmp_path)  # no file given: the existing one stays
    assert again.returncode == 0, again.stderr
    assert installed.read_text() == mine.read_text()

    for args, message in (
        (["--bogus"], "unknown option --bogus"),
        ([str(tmp_path / "missing.toml")], "cannot read the config file"),
    ):
        bad = install_systemd(*args, destdir=tmp_path)
        assert bad.returncode == 2 and message in bad.stderr


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
