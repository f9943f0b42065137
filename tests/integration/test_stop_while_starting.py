"""A daemon told to stop while it starts stops then, not once the start-up is over: a
start-up held up (a migration waiting for the database's lock, 100,000 schedules to
time) made SIGTERM wait for it, and systemd's stop waited with it."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from conftest import alive, children, wait_for  # type: ignore[import-not-found]

TASKS = """
[tasks.hourly]
schedule = "0 * * * *"
command = "true"
"""


def migrating_child(pid: int) -> int | None:
    for child in children(pid):
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


def said(daemon: Any, event: str) -> bool:
    """Whether the daemon's log has the event yet (a forked daemon makes its log file
    once it runs)."""
    try:
        return f'"event": "{event}"' in daemon.log()
    except FileNotFoundError:
        return False


class TableLock:
    """An ACCESS EXCLUSIVE lock on one table, held by a transaction of the test's own
    (on a thread with its own loop) for the block: whoever reads the table waits."""

    def __init__(self, url: str, table: str) -> None:
        self._url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self._table = table
        self._held = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._hold()))

    async def _hold(self) -> None:
        conn = await asyncpg.connect(self._url, timeout=10)
        try:
            async with conn.transaction():
                await conn.execute(f"LOCK TABLE {self._table} IN ACCESS EXCLUSIVE MODE")
                self._held.set()
                await asyncio.to_thread(self._release.wait, 120)
        finally:
            await conn.close()

    def __enter__(self) -> TableLock:
        self._thread.start()
        assert self._held.wait(10), "the lock was not taken"
        return self

    def __exit__(self, *_: object) -> None:
        self._release.set()
        self._thread.join(10)


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_runs_adopted_before_a_stop_during_start_up_get_their_stop_and_are_recorded(
    make_daemon: Callable[..., Any], gate: Any
) -> None:
    """Held after recovery (the pauses' read waits for a lock on their table), the
    daemon is told to stop: it stops without waiting for the lock, and the run it
    adopted is stopped and its end recorded, as in any stop, not let go as a failed
    start-up lets runs go."""
    daemon = make_daemon(f'[tasks.held]\ncommand = "{gate.wait_command}"\n')
    run = daemon.trigger("held")
    pid = daemon.wait_run(run["id"], lambda r: r["status"] == "running" and r["pid"])["pid"]
    daemon.kill9()  # the run goes on, held by the keeper

    with TableLock(daemon.database, "task_state"):
        daemon.start_process()
        wait_for(lambda: said(daemon, "api.listening"), 30, "recovery and the API listening")
        assert said(daemon, "run.adopted")
        daemon.proc.terminate()
        assert daemon.proc.wait(30) == 0, daemon.log()  # the pauses' read is cut short
    log = daemon.log()
    assert "asked to stop before it was ready" in log and "dispatch.detached" not in log
    assert not alive(pid), "the adopted run was let go"

    daemon.start()
    ended = daemon.get(f"/api/runs/{run['id']}").body
    assert (ended["status"], ended["end_reason"]) == ("ended", "stopped"), ended
