"""A run's environment and directory as cron gives them (issue 25, items 1 and 2).

One real daemon, started as systemd would start it: with a real datagram
NOTIFY_SOCKET, an INVOCATION_ID, a JOURNAL_STREAM, a STATE_DIRECTORY, a
CRONWARDEN_TOKEN and variables of the operator's own.  Each run prints its environment
with ``env`` (no shell in between to add PWD), and the test reads it back from the
run's log through the API.
"""

from __future__ import annotations

import os
import pwd
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cronwarden.config import DEFAULT_PATH

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
ME = pwd.getpwuid(os.geteuid())
NOBODY = pwd.getpwnam("nobody")

DAEMON_ENV = {
    # what systemd gives the service (the socket is a real one, bound below)
    "INVOCATION_ID": "0123456789abcdef0123456789abcdef",
    "JOURNAL_STREAM": "8:12345",
    "STATE_DIRECTORY": "/var/lib/cronwarden",
    "CREDENTIALS_DIRECTORY": "/run/credentials/cronwarden.service",
    "MANAGERPID": "1",
    "PYTHONUNBUFFERED": "1",
    # what an operator put in the daemon's environment
    "CRONWARDEN_TOKEN": "not-a-real-token-but-secret",
    "CRONWARDEN_URL": "http://127.0.0.1:1",
    "DATABASE_PASSWORD": "hunter2",
    "OPERATOR_VAR": "from the operator",
    # locale and zone pass through, as cron's do
    "LANG": "C.UTF-8",
    "LC_TIME": "C.UTF-8",
    "TZ": "Europe/Berlin",
    # not the run user's home: HOME is read from the user database, as cron does
    "HOME": "/tmp/the-daemons-own-home-variable",
    "PWD": "/somewhere/the/daemon/started",
}
CONTROL = ("NOTIFY_SOCKET", "INVOCATION_ID", "JOURNAL_STREAM", "STATE_DIRECTORY")
CONTROL += ("CREDENTIALS_DIRECTORY", "MANAGERPID", "CRONWARDEN_TOKEN", "CRONWARDEN_URL")

TASKS = f"""
[tasks.plain]
command = ["env"]

[tasks.plain_cwd]
command = "pwd"

[tasks.inherit_all]
command = ["env"]
inherit_env = true

[tasks.inherit_some]
command = ["env"]
inherit_env = ["OPERATOR_VAR", "LANG", "NOT_SET_ANYWHERE"]

[tasks.explicit]
command = ["/usr/bin/env"]
inherit_env = true
env = {{ HOME = "/srv/explicit", JOURNAL_STREAM = "the task's own", PATH = "/opt/bin" }}

[tasks.as_me]
command = ["env"]
user = "{ME.pw_name}"

[tasks.as_me_cwd]
command = "pwd"
user = "{ME.pw_name}"

[tasks.as_nobody]
command = ["env"]
user = "nobody"
inherit_env = true

[tasks.as_nobody_ls]
command = "pwd; ls"
user = "nobody"
"""


class NotifyReceiver:
    """A datagram socket in systemd's place, drained on a thread so that the daemon's
    sd_notify never waits on a full queue."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self.lines += self.sock.recv(4096).decode().splitlines()
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from conftest import Daemon, wait_for  # type: ignore[import-not-found]

    workdir = tmp_path_factory.mktemp("run-environment")
    notify = NotifyReceiver(workdir / "notify.sock")
    d = Daemon(workdir, TASKS)
    d.env = {**DAEMON_ENV, "NOTIFY_SOCKET": str(workdir / "notify.sock")}
    d.start()
    wait_for(lambda: "READY=1" in notify.lines, what="READY=1: the daemon used NOTIFY_SOCKET")
    yield d
    assert d.stop() == 0, d.log()
    notify.close()


def output(daemon: Any, task: str) -> list[str]:
    run = daemon.wait_run(daemon.trigger(task)["id"])
    lines = daemon.get(f"/api/runs/{run['id']}/log?limit=10000").body["lines"]
    assert run["end_reason"] == "success", (run, lines)
    return [line["text"] for line in lines]


def environment(daemon: Any, task: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output(daemon, task))


def own_variables(env: dict[str, str], task: str) -> dict[str, str]:
    """The per-run values checked, then dropped so the rest compares as a whole."""
    assert env.pop("CRONWARDEN_TASK") == task
    assert env.pop("CRONWARDEN_ATTEMPT") == "1"
    run_id = env.pop("CRONWARDEN_RUN_ID")
    assert len(run_id) == 36
    assert env.pop("CRONWARDEN_ARTIFACTS_DIR").endswith(f"/artifacts/{run_id}")
    # What lets the job report: its run's own token (masked in the log that shows it)
    # and this daemon's address, not the daemon's own CRONWARDEN_URL.
    assert env.pop("CRONWARDEN_RUN_TOKEN") == "***"
    url = env.pop("CRONWARDEN_URL")
    assert url.startswith("http://127.0.0.1:") and url != DAEMON_ENV["CRONWARDEN_URL"]
    return env


def test_a_run_without_user_gets_crons_environment_and_nothing_of_the_daemons(daemon) -> None:
    env = own_variables(environment(daemon, "plain"), "plain")
    assert env == {
        "HOME": ME.pw_dir,
        "USER": ME.pw_name,
        "LOGNAME": ME.pw_name,
        "SHELL": "/bin/sh",
        "PATH": DEFAULT_PATH,
        "LANG": "C.UTF-8",
        "LC_TIME": "C.UTF-8",
        "TZ": "Europe/Berlin",
    }


def test_a_run_without_user_starts_in_the_daemon_users_home(daemon) -> None:
    assert output(daemon, "plain_cwd") == [ME.pw_dir]


def test_inherit_env_true_passes_the_daemons_environment_but_no_control_variable(
    daemon,
) -> None:
    env = own_variables(environment(daemon, "inherit_all"), "inherit_all")
    assert env["OPERATOR_VAR"] == "from the operator"
    assert env["DATABASE_PASSWORD"] == "hunter2"  # the operator asked for everything
    assert env["PYTHONUNBUFFERED"] == "1"
    for name in CONTROL:
        assert name not in env, name
    assert "PWD" not in env  # the daemon's directory, not the run's
    assert not [name for name in env if name.startswith(("WATCHDOG_", "LISTEN_"))]
    # the run's user stays who the run runs as
    assert (env["HOME"], env["USER"], env["LOGNAME"]) == (ME.pw_dir, ME.pw_name, ME.pw_name)


def test_inherit_env_names_pass_only_those(daemon) -> None:
    env = own_variables(environment(daemon, "inherit_some"), "inherit_some")
    assert env == {
        "HOME": ME.pw_dir,
        "USER": ME.pw_name,
        "LOGNAME": ME.pw_name,
        "SHELL": "/bin/sh",
        "PATH": DEFAULT_PATH,
        "LANG": "C.UTF-8",
        "LC_TIME": "C.UTF-8",
        "TZ": "Europe/Berlin",
        "OPERATOR_VAR": "from the operator",
    }


def test_a_tasks_env_may_set_any_name_itself(daemon) -> None:
    env = environment(daemon, "explicit")
    assert env["HOME"] == "/srv/explicit" and env["PATH"] == "/opt/bin"
    assert env["JOURNAL_STREAM"] == "the task's own"  # the task's, not the daemon's
    assert "NOTIFY_SOCKET" not in env and "CRONWARDEN_TOKEN" not in env


@ROOT_ONLY
def test_user_set_to_the_daemons_own_user(daemon) -> None:
    env = own_variables(environment(daemon, "as_me"), "as_me")
    assert (env["HOME"], env["USER"], env["LOGNAME"]) == (ME.pw_dir, ME.pw_name, ME.pw_name)
    assert env["SHELL"] == "/bin/sh" and env["PATH"] == DEFAULT_PATH
    assert not set(CONTROL) & set(env)
    assert output(daemon, "as_me_cwd") == [ME.pw_dir]


@ROOT_ONLY
def test_a_switched_user_gets_its_own_identity_even_with_inherit_env(daemon) -> None:
    env = own_variables(environment(daemon, "as_nobody"), "as_nobody")
    assert (env["HOME"], env["USER"], env["LOGNAME"]) == (NOBODY.pw_dir, "nobody", "nobody")
    assert env["OPERATOR_VAR"] == "from the operator"
    assert not set(CONTROL) & set(env)


@ROOT_ONLY
def test_a_switched_user_without_a_home_starts_in_the_root_directory(daemon) -> None:
    """nobody's home (/nonexistent) is missing: the run starts in /, which it can
    read, and never in the daemon's private data_dir."""
    assert not Path(NOBODY.pw_dir).is_dir()
    lines = output(daemon, "as_nobody_ls")
    assert lines[0] == "/"
    assert "etc" in lines[1:]


def test_path_comes_from_the_daemon_section(make_daemon) -> None:
    daemon = make_daemon(
        '[tasks.plain]\ncommand = ["env"]\n', daemon_extra='path = "/opt/tools/bin:/usr/bin:/bin"'
    )
    assert environment(daemon, "plain")["PATH"] == "/opt/tools/bin:/usr/bin:/bin"
