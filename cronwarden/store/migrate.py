"""Apply the alembic migrations shipped inside the package, at daemon start-up.

A database already at HEAD (every start but the first after an upgrade) is told apart
with one query, without importing alembic or reading the migration scripts: a tenth
of a second and several MB of a start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0019"  # the newest revision in MIGRATIONS (a test holds the two together)
# Any constant works; it only has to be the same on every node sharing a database.
_PG_MIGRATION_LOCK = 0x63726F6E


def alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; safe to call from several nodes at once."""
    async with engine.connect() as conn:
        if await _revision(conn) == HEAD:
            return
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
