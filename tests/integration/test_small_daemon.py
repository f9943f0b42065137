"""A small daemon stays small: what it does not use, it does not import.

A daemon with a few tasks on SQLite, started as an operator starts it, under
PYTHONPROFILEIMPORTTIME (``-X importtime``): every module it imported by READY is in its
log, before its ``daemon.ready`` line.  The modules of features it was not configured
for must not be among them, on a first start (a new database, migrated by a process
of its own) nor on a restart.  benchmarks/imports.py measures what each import costs."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from conftest import Daemon, wait_for  # type: ignore[import-not-found]

TASKS = "".join(
    f'[tasks.t{i}]\ncommand = "true"\nschedule = "0 3 * * {i % 7}"\n' for i in range(10)
)
# What a daemon of ten tasks on SQLite, with no notification target, must not load.
UNUSED = {
    "alembic": "migrations run in a process of their own (store/migrate.py)",
    "mako": "alembic's templates",
    "asyncpg": "the PostgreSQL driver, on SQLite",
    "sqlalchemy.dialects.postgresql": "PostgreSQL's dialect, on SQLite (model.py, engine.py)",
    "apprise": "no apprise notification target",
    "cron_descriptor": "schedules are worded only when asked (scheduler/words.py)",
}
LINE = re.compile(r"import time:\s+\d+ \|\s+\d+ \| *(\S+)$", re.MULTILINE)


def imported_by_ready(daemon: Daemon) -> set[str]:
    log = wait_for(lambda: _until_ready(daemon.log()), timeout=60, what="daemon.ready")
    return set(LINE.findall(log))


def _until_ready(log: str) -> str | None:
    end = log.find("daemon.ready")
    return log[:end] if end >= 0 else None


@pytest.mark.parametrize("start", ["first start", "restart"])
def test_a_daemon_on_sqlite_leaves_unused_features_unimported(
    make_daemon: Callable[..., Daemon], start: str
) -> None:
    daemon = make_daemon(TASKS, start=False)
    daemon.env = {"PYTHONPROFILEIMPORTTIME": "1"}
    if start == "restart":
        daemon.start(timeout=60)
        assert daemon.stop() == 0
    daemon.start(timeout=60)  # a first start migrates in a process of its own
    modules = imported_by_ready(daemon)
    assert "sqlalchemy.dialects.sqlite" in modules  # the trace is the daemon's
    loaded = {
        name: why
        for name, why in UNUSED.items()
        if any(m == name or m.startswith(name + ".") for m in modules)
    }
    assert not loaded, f"imported by READY without being used: {loaded}"
    assert daemon.get("/health").status == 200
    assert daemon.stop() == 0
