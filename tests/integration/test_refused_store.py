"""A database that refuses the connection (PostgreSQL down: the driver raises a bare
ConnectionRefusedError, an OSError SQLAlchemy does not wrap) is StoreUnavailable to
every write: the caller waits and tries again, and an API answers 503, never 500."""

from __future__ import annotations

import pytest

from cronwarden.errors import StoreUnavailable
from cronwarden.store import Store, open_engine
from cronwarden.store.artifacts import SqlArtifacts
from cronwarden.store.slots import FleetSlots

REFUSING = "postgresql+asyncpg://postgres@127.0.0.1:1/test"  # nothing listens on port 1


async def test_writes_to_a_database_that_refuses_are_store_unavailable() -> None:
    engine = open_engine(REFUSING)
    try:
        with pytest.raises(StoreUnavailable, match="unavailable"):
            await Store(engine).save_task_state("t", paused=True)
        with pytest.raises(StoreUnavailable, match="unavailable"):
            await FleetSlots(engine).take("t", "run-1", 1)
        with pytest.raises(StoreUnavailable, match="unavailable"):
            await SqlArtifacts(engine).mark_removed(["run-1"], "why")
    finally:
        await engine.dispose()
