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
from dataclasses import dataclass, field
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from cronwarden.store.engine import WAL_CHECKPOINT_PAGES, json_value, sqlite_pragmas

T = TypeVar("T")


class Lane:
    """``threads`` plain connections to the SQLite file of ``engine``."""

    def __init__(self, engine: AsyncEngine, threads: int, name: str) -> None:
        self._engine = sa.create_engine(
            engine.url.set(drivername="sqlite"),
            connect_args={"timeout": 30},
            json_deserializer=json_value,
            pool_size=threads,
            max_overflow=0,
        )
        sa.event.listen(self._engine, "connect", sqlite_pragmas)
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


@dataclass
class Writers:
    """What the daemon's writers to one SQLite file share: the recorder's commits and a
    retention pass's deletes (store/recorder.py, store/pruning.py).

    ``turn``: SQLite lets one writer in at a time, and one that finds the lock taken
    polls for it at growing intervals (up to 100 ms): a pass whose deletes came back to
    back kept a fire's claim waiting 0.5 s.  The daemon's writers take turns here
    instead, in order.

    ``pass_checkpoints``: while a pass runs it checkpoints the WAL on a thread of its
    own, and a commit that checkpointed by itself (past 128 pages) copied the pass's
    pages back inside a fire's claim: 0.46 s."""

    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    pass_checkpoints: bool = False

    def checkpoint_here(self, conn: Connection) -> Connection:
        """``conn`` (a writer's, in its transaction's thread) set to checkpoint by
        itself unless a pass does it."""
        return checkpoint_past(conn, 0 if self.pass_checkpoints else WAL_CHECKPOINT_PAGES)


def checkpoint_past(conn: Connection, pages: int) -> Connection:
    """``conn`` set to checkpoint the WAL in its commits once it holds ``pages`` (0:
    never; whoever asks for one does it).  Set only when it changes."""
    if conn.info.get("wal_autocheckpoint", WAL_CHECKPOINT_PAGES) != pages:
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={pages}")
        conn.info["wal_autocheckpoint"] = pages
    return conn
