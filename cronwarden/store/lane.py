"""Units of SQLite work done in one hop: a plain connection driven on threads of its own.

Through the async driver (aiosqlite) every statement, fetch, cursor close, begin,
commit and the pool's closing rollback is a round trip between the event loop and the
driver's thread, and a loop busy with other work answers each of them late.  A lane
runs a whole unit of work (a batch of writes, the queries of a page) as one call on
its thread, through SQLAlchemy's synchronous engine on the same file: one round trip.
PostgreSQL needs none of this (asyncpg has no thread), so lanes are SQLite's only.

What the reader lane buys is measured, not assumed: ``benchmarks/run_pages.py
--reader-lane off`` serves the same file through the async engine.  At 1,000,000 runs
a page's p50 was 0.4-0.6 ms lower with the lane (2.2 against 2.7-2.9 ms) and a search
of one match's 2 ms lower (a search is three statements: three hops the other way);
the p99s were inside the machine's noise either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cronwarden.store.engine import sqlite_pragmas

T = TypeVar("T")


class Lane:
    """``threads`` plain connections to the SQLite file of ``engine``.

    ``checkpoints=False``: its commits leave the WAL's checkpoint to whoever asks for
    one (see store/pruning.py), instead of copying pages back into the database and
    syncing it before the commit returns."""

    def __init__(
        self, engine: AsyncEngine, threads: int, name: str, *, checkpoints: bool = True
    ) -> None:
        self._engine = sa.create_engine(
            engine.url.set(drivername="sqlite"),
            connect_args={"timeout": 30},
            pool_size=threads,
            max_overflow=0,
        )
        sa.event.listen(self._engine, "connect", sqlite_pragmas)
        if not checkpoints:
            sa.event.listen(self._engine, "connect", _no_automatic_checkpoints)
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix=name)

    async def transaction(self, work: Callable[[Connection], T]) -> T:
        """``work`` in one transaction, committed unless it raises."""
        return await self._call(self._in_transaction, work)

    async def read(self, work: Callable[[Connection], T]) -> T:
        """``work`` on a connection of its own (reads see one snapshot per statement)."""
        return await self._call(self._on_connection, work)

    def submit(self, work: Callable[[Connection], T]) -> Future[T]:
        """``work`` on a connection of its own, from any thread, without waiting."""
        return self._threads.submit(self._on_connection, work)

    async def close(self) -> None:
        """Close the connections and end the threads."""
        await asyncio.get_running_loop().run_in_executor(self._threads, self._engine.dispose)
        self._threads.shutdown(wait=False)

    async def _call(
        self, how: Callable[[Callable[[Connection], T]], T], work: Callable[[Connection], T]
    ) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, how, work)

    def _in_transaction(self, work: Callable[[Connection], T]) -> T:
        with self._engine.begin() as conn:
            return work(conn)

    def _on_connection(self, work: Callable[[Connection], T]) -> T:
        with self._engine.connect() as conn:
            return work(conn)


def _no_automatic_checkpoints(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()
