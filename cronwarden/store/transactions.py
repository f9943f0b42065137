"""A write transaction that runs to its end whatever cancels its caller.

A task cancelled inside ``async with engine.begin()`` makes SQLAlchemy invalidate the
connection, and cancelled again while that connection closes, aiosqlite's is stopped
without being closed: it keeps SQLite's write lock, and every other writer waits for
it.  A daemon told to stop just after it started (its heartbeat cancelled inside its
upsert, then again) waited for ever to record a run's end ("database is locked",
every 30 s; tests/integration/test_cancelled_writes.py).  Here the transaction runs in
a task of its own, shielded: a cancellation stops the caller's wait, not the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")


async def in_transaction(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """``work`` in one transaction, committed unless it raises, never cut short."""

    async def transaction() -> T:
        async with engine.begin() as conn:
            return await work(conn)

    running = asyncio.ensure_future(transaction())
    # Retrieved even when nobody waits for it any more (the caller was cancelled).
    running.add_done_callback(lambda done: done.cancelled() or done.exception())
    return await asyncio.shield(running)
