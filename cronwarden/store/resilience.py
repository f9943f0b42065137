"""Riding out a database that is briefly unreachable (a PostgreSQL restart, a failover).

A run's outcome must never be lost because the database blinked: writes that record
what already happened are retried with capped exponential backoff until they land.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import structlog

from cronwarden.errors import CronwardenError
from cronwarden.scheduler.policies import retry_delay

log = structlog.get_logger("cronwarden.store")
T = TypeVar("T")

FIRST_DELAY = timedelta(milliseconds=250)
MAX_DELAY = timedelta(seconds=15)


class StoreUnavailable(CronwardenError):
    """The database cannot be reached right now; nothing was written."""


class GaveUp(CronwardenError):
    """The database stayed unreachable for longer than the write could wait."""


async def persist(
    what: str, write: Callable[[], Awaitable[T]], *, give_up_after: timedelta | None = None
) -> T:
    """Run ``write`` until it succeeds; only StoreUnavailable is retried.

    ``give_up_after`` bounds the wait (None: until it lands) and raises GaveUp past it.
    """
    loop = asyncio.get_running_loop()
    deadline = None if give_up_after is None else loop.time() + give_up_after.total_seconds()
    attempt = 0
    while True:
        try:
            return await write()
        except StoreUnavailable as exc:
            attempt += 1
            wait = retry_delay(
                attempt, delay=FIRST_DELAY, backoff="exponential", max_delay=MAX_DELAY
            ).total_seconds()
            if deadline is not None and loop.time() + wait > deadline:
                raise GaveUp(f"{what}: the database stayed unreachable ({exc})") from exc
            log.warning("store.retrying", what=what, attempt=attempt, wait_s=wait, error=str(exc))
            await asyncio.sleep(wait)
