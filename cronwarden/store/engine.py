"""Engine set-up: SQLite in WAL mode by default, PostgreSQL (asyncpg) when configured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def open_engine(url: str) -> AsyncEngine:
    """Create the engine; for SQLite also the database's directory and its pragmas.

    WAL with synchronous=NORMAL keeps every committed run durable across a daemon crash
    (only an OS crash can lose the last commits) at ~20k commits/s; busy_timeout makes
    the CLI's read-only access wait instead of failing while the daemon writes.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=10, json_deserializer=json_value
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30}, json_deserializer=json_value)
    event.listen(engine.sync_engine, "connect", sqlite_pragmas)
    return engine


_EMPTY: dict[str, type[dict[str, Any]] | type[list[Any]]] = {"{}": dict, "[]": list}


def json_value(text: str) -> Any:
    """A JSON column's value: ``json.loads``, but the empty object and list (most runs'
    params, tags and metadata) made without the parser, which took a seventh of a page
    of runs' read for them (three a row)."""
    empty = _EMPTY.get(text)
    return empty() if empty is not None else json.loads(text)


def is_shared(engine: AsyncEngine) -> bool:
    """Several daemons may share this database (PostgreSQL); SQLite is one host's."""
    return engine.dialect.name == "postgresql"


# The WAL's bound.  By default SQLite checkpoints every 1,000 pages and never shrinks
# the WAL, so it grew ~4 MB before a checkpoint: on a full data_dir that ate the space
# kept aside for outcomes (host/space_reserve.py) within seconds.  A checkpoint every 128
# pages (512 KiB) and the WAL cut back to 512 KiB after each keep it near that bound
# (a checkpoint that readers hold back can still let it grow for a while).
WAL_CHECKPOINT_PAGES = 128
WAL_LIMIT_BYTES = 512 * 1024


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA busy_timeout=30000",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}",
        f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}",
    ):
        cursor.execute(pragma)
    cursor.close()


def upsert_insert(engine: AsyncEngine, table: sa.Table) -> Any:
    """An INSERT that can say ON CONFLICT DO NOTHING / DO UPDATE, in the engine's
    dialect (both SQLite and PostgreSQL have it, with the same call)."""
    return dialect_insert(engine.dialect.name, table)


def dialect_insert(dialect_name: str, table: sa.Table) -> Any:
    """``upsert_insert`` for a dialect named by a connection.  Each dialect's module is
    imported where it is used: a daemon on SQLite never loads PostgreSQL's (~2.4 MB)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)
