"""The stores every contract test runs against: the in-memory double, a SQLite file,
and a fresh PostgreSQL database (one per module, emptied before each test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cronwarden.store import Store, open_engine
from cronwarden.store.memory import MemoryStore

STORES = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
TABLES = ("runs", "task_state", "nodes", "idempotency_keys")


@pytest.fixture(scope="module")
def contract_pg_url(pg_admin: Any) -> str:
    """A PostgreSQL database made for this module, dropped with the session's."""
    return str(pg_admin.create())


@pytest.fixture(params=STORES)
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A store with nothing in it; its kind is the test id (memory, sqlite, postgresql)."""
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'cronwarden.db'}"
    else:
        url = request.getfixturevalue("contract_pg_url")
    store = await Store.open(open_engine(url))
    async with store.engine.begin() as conn:
        for table in TABLES:
            await conn.execute(sa.text(f"DELETE FROM {table}"))
    try:
        yield store
    finally:
        await store.close()
