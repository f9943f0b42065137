"""Writes that record what already happened wait out a database that is briefly down.

A run's outcome must never be lost because the database blinked: ``persist`` retries a
write with capped exponential backoff until it lands (or, with a deadline, until the
deadline; the last wait is cut to what remains, so the whole grace is used).  Only
``StoreUnavailable`` is retried: any other error is a bug and is raised at once.

Kept outside ``store/`` (it needs nothing of SQL) so the run core can use it without
importing the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import structlog

from cronwarden.errors import GaveUp, StoreUnavailable
from cronwarden.support.backoff import backoff_delay

log = structlog.get_logger("cronwarden.store")
T = TypeVar("T")

FIRST_DELAY = timedelta(milliseconds=250)
# A write waiting out an outage lands at most this long after the store is back.  15 s
# kept outcomes (and the end of "running") that late after a 20 s outage; a retry
# every 2 s during an outage costs one refused connection.
MAX_DELAY = timedelta(seconds=2)


async def persist(
    what: str,
    write: Callable[[], Awaitable[T]],
    *,
    give_up_after: timedelta | None = None,
    monotonic: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """Run ``write`` until it succeeds; only StoreUnavailable is retried.

    ``give_up_after`` bounds the wait (None: until it lands); GaveUp is raised once that
    much time has passed with the database still unreachable.  ``monotonic`` and
    ``sleep`` are replaceable so tests can check the waits without waiting.
    """
    now = monotonic or asyncio.get_running_loop().time
    deadline = None if give_up_after is None else now() + give_up_after.total_seconds()
    attempt = 0
    while True:
        try:
            return await write()
        except StoreUnavailable as exc:
            attempt += 1
            wait = backoff_delay(
                attempt, delay=FIRST_DELAY, backoff="exponential", max_delay=MAX_DELAY
            ).total_seconds()
            if deadline is not None:
                remaining = deadline - now()
                if remaining <= 0:
                    raise GaveUp(f"{what}: the database stayed unreachable ({exc})") from exc
                wait = min(wait, remaining)
            if attempt & (attempt - 1) == 0:  # 1, 2, 4, 8...: a long outage is not a flood
                log.warning(
                    "store.retrying", what=what, attempt=attempt, wait_s=wait, error=str(exc)
                )
            await sleep(wait)
