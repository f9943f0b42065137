"""A daemon told to stop while it starts stops then, not once the start-up is over: a
start-up held up (a migration waiting for the database's lock, 100,000 schedules to
time) made SIGTERM wait for it, and systemd's stop waited with it."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import alive, wait_for  # type: ignore[import-not-found]

TASKS = """
[tasks.hourly]
schedule = "0 * * * *"
command = "true"
"""


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def migrating_child(pid: int) -> int | None:
    for child in children_of(pid):
        try:
            if b"migrate" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        except FileNotFoundError:
            continue
    return None


@pytest.fixture
def write_lock(tmp_path: Path) -> Iterator[Callable[[Path], sqlite3.Connection]]:
    """Holds SQLite's write lock on a new database (WAL: readers still read)."""
    held: list[sqlite3.Connection] = []

    def hold(path: Path) -> sqlite3.Connection:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("BEGIN IMMEDIATE")
        held.append(connection)
        return connection

    yield hold
    for connection in held:
        connection.close()


def test_sigterm_during_a_migration_held_up_stops_the_daemon_at_once(
    make_daemon: Callable[..., Any], write_lock: Callable[[Path], sqlite3.Connection]
) -> None:
    daemon = make_daemon(TASKS, start=False, fresh_schema=True)
    lock = write_lock(daemon.data_dir / "cronwarden.db")
    daemon.start_process()
    migrating = wait_for(lambda: migrating_child(daemon.proc.pid), 30, "the migrating process")

    daemon.proc.terminate()
    try:
        code = daemon.proc.wait(10)  # the migration itself would wait 30 s for the lock
    except subprocess.TimeoutExpired:
        pytest.fail(f"the daemon did not stop within 10 s of SIGTERM:\n{daemon.log()}")
    log = daemon.log()
    assert code == 0, log
    assert '"event": "daemon.stopped"' in log and "daemon.start_failed" not in log
    assert "Traceback" not in log
    wait_for(lambda: not alive(migrating), 10, "the migration to end")

    lock.execute("ROLLBACK")  # nothing was half done: the next start migrates and serves
    daemon.start()
    assert daemon.get("/api/tasks").status == 200
    assert daemon.stop() == 0
