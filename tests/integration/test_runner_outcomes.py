"""Every way a run can end, with real processes, recorded truthfully (issue: runners)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import DATABASES, children, wait_for  # type: ignore[import-not-found]


@pytest.fixture(scope="module", params=DATABASES)
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    from conftest import Daemon, database_option  # type: ignore[import-not-found]

    workdir = tmp_path_factory.mktemp("outcomes")
    (workdir / "work").mkdir()
    (workdir / "task.env").write_text('FROM_FILE=file\nOVERRIDDEN="from file"\n')
    (workdir / "not-executable.sh").write_text("#!/bin/sh\necho hi\n")
    tasks = f"""
    [tasks.env]
    command = "env | grep -E '^(CRONWARDEN_|FROM_|OVERRIDDEN|EXTRA)' | sort; pwd; umask"
    working_dir = "{workdir / "work"}"
    env_file = "{workdir / "task.env"}"
    env = {{ OVERRIDDEN = "from env", EXTRA = "x" }}
    umask = "027"
    params = ["who", "what"]

    [tasks.inject]
    command = ["/bin/sh", "-c", "echo \\"$CRONWARDEN_PARAM_who\\""]
    params = ["who"]

    [tasks.three_ok]
    command = "exit 3"
    success_exit_codes = [0, 3]

    [tasks.missing_program]
    command = ["/no/such/program"]

    [tasks.not_executable]
    command = ["{workdir / "not-executable.sh"}"]

    [tasks.missing_dir]
    command = "true"
    working_dir = "{workdir / "nope"}"

    [tasks.missing_env_file]
    command = "true"
    env_file = "{workdir / "nope.env"}"

    [tasks.shell_not_found]
    command = "no-such-command-here"

    [tasks.as_nobody]
    command = "id -un; id -G; echo $HOME"
    user = "nobody"

    [tasks.long]
    command = "echo started; sleep 60"
    stop_signal = "SIGINT"
    kill_grace = "2s"

    [tasks.queued]
    command = "sleep 60"
    overlap = "queue"

    [tasks.escape]
    command = "sleep 30 & echo main done"

    [tasks.self_signal]
    command = "kill -USR1 $$"

    [tasks.drop_new]
    command = "for i in $(seq 1 100); do echo line-$i; done"
    max_log_size = 50
    log_on_full = "drop_new"

    [tasks.drop_old]
    command = "for i in $(seq 1 100); do echo line-$i; done"
    max_log_size = 50
    log_on_full = "drop_old"

    [tasks.kill_on_full]
    command = "while true; do echo spam; done"
    max_log_size = "10KiB"
    log_on_full = "kill"
    """
    d = Daemon(workdir, tasks, daemon_extra=database_option(request)).start()
    d.workdir_path = workdir
    yield d
    assert d.stop() == 0, d.log()


def log_texts(daemon, run_id: str) -> list[str]:
    return [ln["text"] for ln in daemon.get(f"/api/runs/{run_id}/log?limit=10000").body["lines"]]


def test_environment_layers_and_cronwarden_variables(daemon) -> None:
    run = daemon.wait_run(daemon.trigger("env", {"who": "world"})["id"])
    assert run["end_reason"] == "success", run
    out = log_texts(daemon, run["id"])
    assert f"CRONWARDEN_RUN_ID={run['id']}" in out
    assert "CRONWARDEN_TASK=env" in out and "CRONWARDEN_ATTEMPT=1" in out
    assert "CRONWARDEN_PARAM_who=world" in out
    assert not any(t.startswith("CRONWARDEN_SCHEDULED_FOR") for t in out)
    assert "FROM_FILE=file" in out and "OVERRIDDEN=from env" in out and "EXTRA=x" in out
    assert str(daemon.workdir_path / "work") in out
    assert "0027" in out


def test_params_never_reach_the_shell_string(daemon, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"$(touch {marker}); `touch {marker}`"
    run = daemon.wait_run(daemon.trigger("inject", {"who": payload})["id"])
    assert log_texts(daemon, run["id"]) == [payload]
    assert not marker.exists()


def test_undeclared_or_non_string_params_are_422(daemon) -> None:
    before = len(daemon.runs(task_name="inject"))
    resp = daemon.post("/api/tasks/inject/runs", {"params": {"who": 5, "rm": "-rf"}})
    assert resp.status == 422 and resp.content_type == "application/problem+json"
    assert {e["name"] for e in resp.body["errors"]} == {"who", "rm"}
    nul = daemon.post("/api/tasks/inject/runs", {"params": {"who": "a\u0000b"}})
    assert nul.status == 422 and "NUL" in nul.body["errors"][0]["reason"]
    assert len(daemon.runs(task_name="inject")) == before  # a refused trigger records nothing


def test_success_exit_codes(daemon) -> None:
    run = daemon.wait_run(daemon.trigger("three_ok")["id"])
    assert (run["end_reason"], run["exit_code"]) == ("success", 3)


@pytest.mark.parametrize(
    ("task", "fragment"),
    [
        ("missing_program", "command not found: /no/such/program"),
        ("not_executable", "permission denied"),
        ("missing_dir", "does not exist"),
        ("missing_env_file", "cannot read env_file"),
        ("shell_not_found", "command not found"),
    ],
)
def test_start_failures_are_failed_runs_with_a_reason(daemon, task: str, fragment: str) -> None:
    run = daemon.wait_run(daemon.trigger(task)["id"])
    assert run["end_reason"] == "failed", run
    assert fragment in (run["error"] or ""), run
    assert daemon.get("/health").status == 200  # the daemon is unharmed


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
def test_runs_as_another_user(daemon) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    run = daemon.wait_run(daemon.trigger("as_nobody")["id"])
    assert run["end_reason"] == "success", run
    name, groups, home = log_texts(daemon, run["id"])
    assert name == "nobody" and home == nobody.pw_dir
    assert "0" not in groups.split()  # root's group is not kept


def children_names(pid: int) -> list[str]:
    try:
        return [Path(f"/proc/{child}/comm").read_text().strip() for child in children(pid)]
    except FileNotFoundError:  # gone meanwhile: asked again
        return []


def test_stop_a_running_run_with_its_stop_signal(daemon) -> None:
    run = daemon.trigger("long")
    pid = daemon.wait_run(run["id"], lambda r: r["status"] == "running")["pid"]
    # Until its shell has started sleep: dash catches SIGINT under -c, and one that
    # comes while the shell is still on its way there can be left pending in it (the
    # run was then killed after its kill_grace: signal 9).  The user's shell, not the
    # daemon; cronwarden's own shell leaves SIGINT be (test_placement_gate.py).
    wait_for(lambda: "sleep" in children_names(pid), 30, "the task's shell to start sleep")
    resp = daemon.post(f"/api/runs/{run['id']}/stop")
    assert resp.status == 202
    ended = daemon.wait_run(run["id"], timeout=10)
    assert (ended["end_reason"], ended["signal"], ended["exit_code"]) == ("stopped", 2, None)
    again = daemon.post(f"/api/runs/{run['id']}/stop")
    assert again.status == 409 and again.content_type == "application/problem+json"


def test_stop_a_queued_run_ends_it_at_once(daemon) -> None:
    first = daemon.trigger("queued")
    second = daemon.trigger("queued")
    daemon.wait_run(first["id"], lambda r: r["status"] == "running")
    assert daemon.get(f"/api/runs/{second['id']}").body["status"] == "pending"
    assert daemon.post(f"/api/runs/{second['id']}/stop").status == 202
    ended = daemon.wait_run(second["id"], timeout=5)
    assert (ended["end_reason"], ended["pid"], ended["start_at"]) == ("stopped", None, None)
    assert daemon.post(f"/api/runs/{first['id']}/stop").status == 202
    assert daemon.wait_run(first["id"])["end_reason"] == "stopped"


def test_escaped_grandchild_does_not_keep_the_run_running(daemon) -> None:
    started = time.monotonic()
    run = daemon.wait_run(daemon.trigger("escape")["id"], timeout=15)
    assert time.monotonic() - started < 10
    assert (run["end_reason"], run["exit_code"]) == ("success", 0)
    assert "main done" in log_texts(daemon, run["id"])


def test_death_by_signal_records_the_signal_not_an_exit_code(daemon) -> None:
    run = daemon.wait_run(daemon.trigger("self_signal")["id"])
    assert (run["end_reason"], run["exit_code"], run["signal"]) == ("failed", None, 10)


def test_drop_new_keeps_the_first_bytes(daemon) -> None:
    run = daemon.wait_run(daemon.trigger("drop_new")["id"])
    texts = log_texts(daemon, run["id"])
    assert texts[:7] == [f"line-{i}" for i in range(1, 8)]
    assert "dropped 93 lines" in texts[-1]
    assert run["log_truncated"] and run["log_size"] <= 50 and run["end_reason"] == "success"


def test_drop_old_keeps_the_last_bytes(daemon) -> None:
    run = daemon.wait_run(daemon.trigger("drop_old")["id"])
    texts = log_texts(daemon, run["id"])
    assert texts[-1] == "line-100" and "dropped" in texts[0]
    assert run["log_truncated"] and run["log_size"] <= 50


def test_kill_on_full_ends_as_log_overflow(daemon) -> None:
    run = daemon.wait_run(daemon.trigger("kill_on_full")["id"], timeout=15)
    assert run["end_reason"] == "log_overflow" and run["signal"] == 15
    assert run["log_truncated"] and run["log_size"] <= 10 * 1024
