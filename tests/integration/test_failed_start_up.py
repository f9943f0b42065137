"""A daemon that fails to start leaves the runs of its previous life as it found them:
their processes running, their rows ``running`` with their pid, nothing recorded and
no alert; the next start adopts them and records their real outcome."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import alive, wait_for  # type: ignore[import-not-found]

from cronwarden.model import Run
from cronwarden.store import Store, open_engine

pytestmark = pytest.mark.both_databases


def tasks(gate: Any, alerts: Path) -> str:
    return f"""
    [notify.local]
    type = "command"
    command = "cat >> {alerts}"

    [tasks.held]
    command = "echo hello; {gate.wait_command}; exit 3"
    notify = ["local"]
    """


def row_of(daemon: Any, run_id: str) -> Run:
    """The run's row as the database holds it (read while no daemon runs)."""

    async def read() -> Run:
        store = await Store.open(open_engine(daemon.database))
        try:
            return await store.get_run(run_id)
        finally:
            await store.close()

    return asyncio.run(read())


def start_running_then_kill_9(daemon: Any) -> dict[str, Any]:
    """A run whose process waits on the gate, left behind by a daemon killed -9."""
    run = daemon.trigger("held")
    running = daemon.wait_run(run["id"], lambda r: r["status"] == "running" and r["pid"])
    daemon.kill9()
    return dict(running)


def fails_to_start(daemon: Any) -> str:
    """Start the daemon, expect it to exit non-zero on its own; returns its log."""
    daemon.start_process()
    assert daemon.proc.wait(60) == 1
    return str(daemon.log())


def left_as_it_was(daemon: Any, run: dict[str, Any], alerts: Path, log: str) -> None:
    assert alive(run["pid"]), "the run's process was stopped"
    row = row_of(daemon, run["id"])
    assert (row.status, row.pid, row.end_reason) == ("running", run["pid"], None)
    assert not alerts.exists(), alerts.read_text()
    assert "Task was destroyed" not in log and "Traceback" not in log
    assert "run.ended" not in log


def adopted_to_its_real_end(daemon: Any, run: dict[str, Any], gate: Any) -> None:
    daemon.start()
    assert "run.adopted" in daemon.log()
    assert daemon.get(f"/api/runs/{run['id']}").body["status"] == "running"
    gate.open()
    ended = daemon.wait_run(run["id"])
    if "adoption.no_exit_events" in daemon.log():  # exit statuses need root to be read
        assert ended["end_reason"] == "crashed" and "re-adopted" in ended["error"]
    else:
        assert (ended["end_reason"], ended["exit_code"]) == ("failed", 3)
    notes = [
        line["text"]
        for line in daemon.get(f"/api/runs/{run['id']}/log").body["lines"]
        if line["stream"] == "cronwarden"
    ]
    assert not any("interrupted" in note for note in notes), notes  # a let-go run was not


def test_a_busy_port_adopts_nothing_and_stops_nothing(make_daemon, gate, tmp_path) -> None:
    alerts = tmp_path / "alerts.jsonl"
    daemon = make_daemon(tasks(gate, alerts))
    run = start_running_then_kill_9(daemon)

    with socket.create_server(("127.0.0.1", daemon.port)):  # another program took the port
        log = fails_to_start(daemon)
    assert f"127.0.0.1:{daemon.port}" in log and "in use" in log
    assert "run.adopted" not in log
    left_as_it_was(daemon, run, alerts, log)

    adopted_to_its_real_end(daemon, run, gate)


def test_a_step_failing_after_adoption_lets_the_runs_go_as_they_are(
    make_daemon, gate, tmp_path
) -> None:
    """The failure comes after recovery adopted the run and the API listened: a new
    @reboot task (a new boot) cannot be marked fired, as data_dir holds a directory
    where the ledger's temporary file goes."""
    alerts = tmp_path / "alerts.jsonl"
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("first-boot\n")
    daemon = make_daemon(tasks(gate, alerts), start=False)
    daemon.env["CRONWARDEN_BOOT_ID_FILE"] = str(boot_id)
    daemon.start()
    run = start_running_then_kill_9(daemon)

    with daemon.config.open("a") as config:
        config.write('[tasks.warm]\ncommand = "true"\nschedule = "@reboot"\n')
    in_the_way = daemon.data_dir / "reboot-fired.tmp"
    in_the_way.mkdir()
    (in_the_way / "something").write_text("")
    log = fails_to_start(daemon)
    assert "run.adopted" in log and "api.listening" in log  # it failed after both
    assert "reboot-fired.tmp" in log and "dispatch.detached" in log
    left_as_it_was(daemon, run, alerts, log)

    (in_the_way / "something").unlink()
    in_the_way.rmdir()
    adopted_to_its_real_end(daemon, run, gate)
    wait_for(lambda: daemon.runs(task_name="warm"), what="the @reboot task fired")
