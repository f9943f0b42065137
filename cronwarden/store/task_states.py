"""The rows beside the runs: each task's state (pauses, the last fire, the alert
marks that must survive a restart) and the installation's key.  A base of Store, so
its callers keep one store object; kept apart as its own kind of rows."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlmodel import select

from cronwarden.model import Installation, TaskState, utcnow
from cronwarden.store.engine import upsert_insert
from cronwarden.store.resilience import outage_as_unavailable
from cronwarden.store.transactions import in_transaction
from cronwarden.task_hash import new_key


class StateRows:
    engine: AsyncEngine

    def _session(self) -> AbstractAsyncContextManager[AsyncSession]:
        raise NotImplementedError

    async def task_states(self) -> dict[str, TaskState]:
        async with self._session() as session:
            rows = (await session.execute(select(TaskState))).scalars()
            return {row.task_name: row for row in rows}

    async def save_task_state(self, task_name: str, **values: Any) -> None:
        """Upsert one task's state (paused, last_scheduled_for, the dead-man's switch).

        One INSERT .. ON CONFLICT DO UPDATE: two saves of the same task at once (the
        switch's start and its first alert) must both land, not race to insert."""
        table = TaskState.__table__  # type: ignore[attr-defined]
        changes = {**values, "updated_at": utcnow()}
        statement = (
            upsert_insert(self.engine, table)
            .values(task_name=task_name, **changes)
            .on_conflict_do_update(index_elements=[table.c.task_name], set_=changes)
        )
        with outage_as_unavailable():
            await in_transaction(self.engine, lambda conn: conn.execute(statement))

    # -- the installation ----------------------------------------------------

    async def installation_key(self) -> bytes:
        """The key task hashes are keyed with (see task_hash.py; ``InstallationKeys``).

        Read, and made only when missing: INSERT .. ON CONFLICT DO NOTHING, then read
        again, so two nodes starting at once on a new database both get the one key
        that was committed, whichever made it."""
        table = Installation.__table__  # type: ignore[attr-defined]
        read = sa.select(table.c.hash_key).where(table.c.id == 1)
        async with self._session() as session:
            key: bytes | None = (await session.execute(read)).scalar()
        if key is None:
            make = (
                upsert_insert(self.engine, table)
                .values(id=1, hash_key=new_key(), created_at=utcnow())
                .on_conflict_do_nothing(index_elements=[table.c.id])
            )

            async def made(conn: AsyncConnection) -> bytes:
                await conn.execute(make)
                return bytes((await conn.execute(read)).scalar_one())

            with outage_as_unavailable():
                key = await in_transaction(self.engine, made)
        return bytes(key)
