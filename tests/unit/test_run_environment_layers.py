"""The pure environment builder: cron's layers, inherit_env, and no control variable
of the daemon's ever reaching a run."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronwarden.config import TaskConfig
from cronwarden.errors import StartFailed
from cronwarden.host.control_env import is_control_variable
from cronwarden.runners.environment import DaemonEnvironment, run_environment
from cronwarden.runners.identity import own_identity_env, start_directory

DAEMON = {
    "PATH": "/home/op/.local/bin:/usr/bin",
    "HOME": "/home/op",
    "USER": "op",
    "LOGNAME": "op",
    "SHELL": "/bin/zsh",
    "LANG": "de_DE.UTF-8",
    "LANGUAGE": "de",
    "LC_ALL": "C.UTF-8",
    "TZ": "Europe/Berlin",
    "NOTIFY_SOCKET": "/run/systemd/notify",
    "WATCHDOG_USEC": "30000000",
    "WATCHDOG_PID": "4242",
    "LISTEN_FDS": "1",
    "INVOCATION_ID": "abc",
    "JOURNAL_STREAM": "8:1",
    "STATE_DIRECTORY": "/var/lib/cronwarden",
    "CREDENTIALS_DIRECTORY": "/run/credentials/cronwarden.service",
    "CRONWARDEN_TOKEN": "secret-token",
    "CRONWARDEN_URL": "http://127.0.0.1:9477",
    "CRONWARDEN_RUN_ID": "of-an-outer-run",
    "PWD": "/home/op/src",
    "DATABASE_PASSWORD": "hunter2",
    "AWS_PROFILE": "prod",
}
ROOT = {"HOME": "/root", "USER": "root", "LOGNAME": "root"}
PATH = "/usr/local/bin:/usr/bin:/bin"
FIRE = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def task(**settings: Any) -> TaskConfig:
    return TaskConfig(name="job", command="true", **settings)


def unchecked_task(**settings: Any) -> TaskConfig:
    """A task as the builder might get it if config validation let a name through
    (config refuses control variables in an inherit_env list)."""
    return TaskConfig.model_construct(**{**dict(task()), **settings})


def build(t: TaskConfig, *, identity: dict[str, str] | None = None, **run: Any) -> dict[str, str]:
    daemon = DaemonEnvironment.of(DAEMON, path=PATH, own_identity=ROOT)
    values = {"run_id": "r1", "attempt": 1, "scheduled_for": None, "params": {}, **run}
    return run_environment(t, daemon=daemon, identity=identity, **values)


def test_crons_environment_only_by_default() -> None:
    assert build(task()) == {
        "HOME": "/root",
        "USER": "root",
        "LOGNAME": "root",
        "SHELL": "/bin/sh",
        "PATH": PATH,
        "LANG": "de_DE.UTF-8",
        "LANGUAGE": "de",
        "LC_ALL": "C.UTF-8",
        "TZ": "Europe/Berlin",
        "CRONWARDEN_RUN_ID": "r1",
        "CRONWARDEN_TASK": "job",
        "CRONWARDEN_ATTEMPT": "1",
    }


def test_a_switched_user_brings_its_own_home_user_logname() -> None:
    nobody = {"HOME": "/nonexistent", "USER": "nobody", "LOGNAME": "nobody"}
    env = build(task(), identity=nobody)
    assert {k: env[k] for k in nobody} == nobody


def test_inherit_env_true_is_the_daemons_environment_without_control_variables() -> None:
    nobody = {"HOME": "/nonexistent", "USER": "nobody", "LOGNAME": "nobody"}
    env = build(task(inherit_env=True), identity=nobody)
    assert env["DATABASE_PASSWORD"] == "hunter2" and env["AWS_PROFILE"] == "prod"
    assert env["PATH"] == DAEMON["PATH"] and env["SHELL"] == "/bin/zsh"  # the daemon's
    assert {k: env[k] for k in nobody} == nobody  # never the daemon's user over the run's
    assert env["CRONWARDEN_RUN_ID"] == "r1"  # this run's, not the daemon's
    leaked = [name for name in env if name in DAEMON and is_control_variable(name)]
    assert leaked == ["CRONWARDEN_RUN_ID"]
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "LISTEN_FDS", "PWD", "CRONWARDEN_TOKEN"):
        assert name not in env


def test_inherit_env_names_pass_only_those_and_may_name_the_identity() -> None:
    env = build(unchecked_task(inherit_env=("AWS_PROFILE", "HOME", "NOT_SET", "NOTIFY_SOCKET")))
    assert env["AWS_PROFILE"] == "prod" and env["HOME"] == "/home/op"
    assert "NOT_SET" not in env and "DATABASE_PASSWORD" not in env
    assert "NOTIFY_SOCKET" not in env  # even named (config refuses such a list)


def test_env_file_then_env_then_cronwardens_own(tmp_path: Path) -> None:
    env_file = tmp_path / "job.env"
    env_file.write_text("A=file\nB=file\nPATH=/from/file\nNO_VALUE\n")
    t = task(
        env_file=env_file,
        env={"B": "env", "CRONWARDEN_TASK": "spoofed", "NOTIFY_SOCKET": "/mine"},
    )
    env = build(t, attempt=3, scheduled_for=FIRE, params={"day": "mon"})
    assert (env["A"], env["B"], env["PATH"]) == ("file", "env", "/from/file")
    assert "NO_VALUE" not in env
    assert env["NOTIFY_SOCKET"] == "/mine"  # the task's own choice, not a leak
    assert env["CRONWARDEN_TASK"] == "job" and env["CRONWARDEN_ATTEMPT"] == "3"
    assert env["CRONWARDEN_SCHEDULED_FOR"] == "2026-03-29T01:30:00.000Z"
    assert env["CRONWARDEN_PARAM_day"] == "mon"


def test_scheduled_for_only_for_a_scheduled_run() -> None:
    assert "CRONWARDEN_SCHEDULED_FOR" not in build(
        task(env={"CRONWARDEN_SCHEDULED_FOR": "x"}), scheduled_for=None
    )


def test_an_unreadable_env_file_is_a_clear_start_failure(tmp_path: Path) -> None:
    with pytest.raises(StartFailed, match="cannot read env_file"):
        build(task(env_file=tmp_path / "missing.env"))
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"A=\xff\xfe\n")
    with pytest.raises(StartFailed, match="is not UTF-8 text"):
        build(task(env_file=binary))


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,20}", fullmatch=True),
        st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=5),
    ),
    st.sampled_from([False, True]),
)
def test_no_control_variable_of_the_daemons_ever_passes(
    environ: dict[str, str], inherit: bool
) -> None:
    environ = {**DAEMON, **environ}
    daemon = DaemonEnvironment.of(environ, path=PATH, own_identity=ROOT)
    for inherit_env in (inherit, tuple(environ)):
        env = run_environment(
            unchecked_task(inherit_env=inherit_env),
            daemon=daemon,
            run_id="r",
            attempt=1,
            scheduled_for=None,
            params={},
        )
        ours = {"CRONWARDEN_RUN_ID", "CRONWARDEN_TASK", "CRONWARDEN_ATTEMPT"}
        assert not [k for k in env if is_control_variable(k) and k not in ours]


def test_control_variables() -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_PID", "LISTEN_FDNAMES", "INVOCATION_ID"):
        assert is_control_variable(name)
    for name in ("RUNTIME_DIRECTORY", "LOGS_DIRECTORY", "CONFIGURATION_DIRECTORY"):
        assert is_control_variable(name)
    for name in ("CRONWARDEN_TOKEN", "MANAGERPID", "SYSTEMD_EXEC_PID", "JOURNAL_STREAM"):
        assert is_control_variable(name)
    for name in ("HOME", "PATH", "LANG", "DATABASE_URL", "MY_DIRECTORY", "NOTIFY"):
        assert not is_control_variable(name)


def test_own_identity_and_start_directory(tmp_path: Path) -> None:
    import pwd

    me = pwd.getpwuid(os.geteuid())
    assert own_identity_env({"HOME": "/elsewhere"}) == {
        "HOME": me.pw_dir,
        "USER": me.pw_name,
        "LOGNAME": me.pw_name,
    }
    assert start_directory(str(tmp_path)) == tmp_path
    assert start_directory(str(tmp_path / "missing")) == Path("/")
    assert start_directory("") == Path("/")


def test_a_uid_without_a_passwd_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    from cronwarden.runners import identity

    monkeypatch.setattr(identity.os, "geteuid", lambda: 123456)
    assert own_identity_env({}) == {"HOME": "/", "USER": "123456", "LOGNAME": "123456"}
    assert own_identity_env({"HOME": "/data", "USER": "app"})["HOME"] == "/data"
