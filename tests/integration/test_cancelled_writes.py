"""A write cancelled twice (in its statement, then in its rollback) must not leave its
transaction open: on SQLite the connection kept the write lock, and a daemon stopped
just after it started waited for ever to record a run's end ("database is locked")."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from cronwarden.store import Store, open_engine
from cronwarden.store.nodes import Heartbeat, NodeRegistry

ROUNDS = 200  # before the fix, ~2 % of rounds left the lock held


def write_lock_free(path: Path) -> bool:
    connection = sqlite3.connect(path, timeout=0)  # not blocking the loop: polled
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


async def test_a_heartbeat_cancelled_twice_leaves_no_lock_behind(tmp_path: Path) -> None:
    path = tmp_path / "cronwarden.db"
    engine = open_engine(f"sqlite+aiosqlite:///{path}")
    store = await Store.open(engine)
    registry = NodeRegistry(engine)
    beat = Heartbeat("n1", datetime.now(UTC), "1", 1, None, "abc")
    await registry.beat(beat, None)
    rng = random.Random(7)
    held = 0
    try:
        for _ in range(ROUNDS):
            task = asyncio.ensure_future(registry.beat(beat, None))
            for _ in range(rng.randint(0, 12)):
                await asyncio.sleep(0)
            task.cancel()
            for _ in range(rng.randint(0, 6)):
                await asyncio.sleep(0)
            task.cancel()  # again, while it rolls back
            await asyncio.gather(task, return_exceptions=True)
            deadline = asyncio.get_running_loop().time() + 5
            while not write_lock_free(path):  # a rollback under way ends soon
                if asyncio.get_running_loop().time() > deadline:
                    held += 1
                    break
                await asyncio.sleep(0.01)
    finally:
        await store.close()
    assert held == 0
