"""Databases at the newest schema, made once per test process and copied for each test.

A daemon's first start on a new database migrates it in a process of its own
(cronwarden/store/migrate.py): ~0.8 s of CPU, paid by most of the suite's ~1,000
fresh daemons and stores, about half the suite's CPU on 2 cores.  Migrating once and
copying the result (a file for SQLite, ``CREATE DATABASE ... TEMPLATE`` for
PostgreSQL) gives each test the same schema the migrations make; the start-up path of
a database already at HEAD is the one every later start takes.  Tests of the
migrations themselves (tests/integration/test_store.py, a daemon started with
``fresh_schema=True``) still begin from an empty database.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from cronwarden.store.migrate import migrate_apart

DB_NAME = "cronwarden.db"  # the daemon's SQLite file in its data_dir
_sqlite: Path | None = None


def migrate(url: str) -> None:
    """Bring the database at ``url`` to HEAD as a daemon does: in a process of its own."""
    migrate_apart(make_url(url))


def sqlite_template() -> Path:
    """A SQLite file at HEAD for this test process (made on first use)."""
    global _sqlite
    if _sqlite is None:
        folder = Path(tempfile.mkdtemp(prefix="cronwarden-schema-"))
        atexit.register(shutil.rmtree, folder, True)
        path = folder / DB_NAME
        migrate(f"sqlite+aiosqlite:///{path}")
        _sqlite = path
    return _sqlite


def place_sqlite(path: Path) -> None:
    """Put a copy of the template at ``path`` (a private directory, a private file),
    unless a database is there already."""
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(sqlite_template(), path)
    os.chmod(path, 0o600)
