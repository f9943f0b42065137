"""Apply the alembic migrations shipped inside the package, at daemon start-up.

A database already at HEAD (every start but the first after an upgrade) is told apart
with one query, without importing alembic or reading the migration scripts: a tenth
of a second and several MB of a start-up.  A database that needs them (a new one, or
one of an older version) is migrated by a process of its own, so that alembic, its
templates and the DDL of every dialect it knows (PostgreSQL's on SQLite too) are never
in the daemon's memory: ~7 MB of a first start's RSS.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronwarden.errors import MigrationFailed

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0020"  # the newest revision in MIGRATIONS (a test holds the two together)
# Any constant works; it only has to be the same on every node sharing a database.
_PG_MIGRATION_LOCK = 0x63726F6E


def alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


# The migrating process: the URL is read from stdin (a password never shows in ps).
APART = "from cronwarden.store.migrate import migrate_from_stdin; migrate_from_stdin()"
# What is said of a failed migration: the end of its traceback.
ERROR_LINES = 20


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; safe to call from several nodes at once.

    Raises MigrationFailed (with the migration's error) if a migration failed."""
    async with engine.connect() as conn:
        if await _revision(conn) == HEAD:
            return
    if engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
        await migrate_here(engine)  # no other process can reach an in-memory database
        return
    process = _migrating_process()
    url = engine.url.render_as_string(hide_password=False)
    try:
        _, said = await asyncio.to_thread(process.communicate, url)
    except asyncio.CancelledError:
        # A daemon stopped while it starts (tests/integration/test_stop_while_starting.py):
        # the migration ends too, its transaction rolled back by the database.
        process.terminate()
        raise
    _check(process.returncode, said)
    await engine.dispose()  # pooled connections start afresh on the new schema


def migrate_apart(url: URL) -> None:
    """``migrate_here`` in a process of its own (the test suite's template schemas)."""
    process = _migrating_process()
    _, said = process.communicate(url.render_as_string(hide_password=False))
    _check(process.returncode, said)


def _migrating_process() -> subprocess.Popen[str]:
    """The migrating process, on this interpreter and its flags (-I, -E, -X: as
    multiprocessing passes them on), so it imports this cronwarden; the URL goes to
    its stdin."""
    flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
    return subprocess.Popen(
        [sys.executable, *flags, "-c", APART],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check(returncode: int, said: str) -> None:
    if returncode != 0:
        said = "\n".join(said.strip().splitlines()[-ERROR_LINES:])
        raise MigrationFailed(f"migrating the database failed (exit {returncode}):\n{said}")


def migrate_from_stdin() -> None:
    """The migrating process: ``migrate_here`` on the database whose URL is on stdin."""
    from cronwarden.store.engine import open_engine

    async def run(url: str) -> None:
        engine = open_engine(url)
        try:
            await migrate_here(engine)
        finally:
            await engine.dispose()

    asyncio.run(run(sys.stdin.read().strip()))


async def migrate_here(engine: AsyncEngine) -> None:
    """The migrations, applied in this process (alembic is imported here)."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Serialise concurrent start-ups of several nodes on one database.
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        await conn.run_sync(_upgrade)


async def _revision(conn: AsyncConnection) -> str | None:
    """The database's revision; None for a new database (no alembic_version yet)."""
    try:
        return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except DBAPIError:  # no such table
        await conn.rollback()
        return None


def _upgrade(connection: Connection) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
