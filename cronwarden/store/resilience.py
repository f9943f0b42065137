"""Riding out a database that is briefly unreachable (a PostgreSQL restart, a failover).

A run's outcome must never be lost because the database blinked: writes that record
what already happened are retried with capped exponential backoff until they land.
Writes that only matter for a while are retried until their deadline, and the last
wait is cut to what remains, so the whole grace is used.  (Fires are not claimed
through here: they wait for the store in one line, see scheduler/service.py.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import structlog
from sqlalchemy import exc as sa_exc

from cronwarden.backoff import backoff_delay
from cronwarden.errors import GaveUp, StoreUnavailable, short_message

log = structlog.get_logger("cronwarden.store")
T = TypeVar("T")

FIRST_DELAY = timedelta(milliseconds=250)
# A write waiting out an outage lands at most this long after the store is back.  15 s
# kept outcomes (and the end of "running") that late after a 20 s outage; a retry
# every 2 s during an outage costs one refused connection.
MAX_DELAY = timedelta(seconds=2)


_STATEMENT_ERRORS = (
    sa_exc.IntegrityError,
    sa_exc.DataError,
    sa_exc.ProgrammingError,
    sa_exc.NotSupportedError,
)
_POOL_ERRORS = (sa_exc.TimeoutError, sa_exc.DisconnectionError)


# PostgreSQL SQLSTATE classes that say the statement or its data is wrong: data
# exceptions (22: a NUL in text, a value out of range), integrity (23), syntax and
# access (42), cardinality (21).  Anything else from the server may pass if retried.
_STATEMENT_SQLSTATES = frozenset({"21", "22", "23", "42"})
# SQLite result codes that say the statement is wrong ("unterminated string" from an
# FTS5 query is SQLITE_ERROR), not that the file is busy, full or unreadable.
_STATEMENT_SQLITE = frozenset(
    {"SQLITE_ERROR", "SQLITE_CONSTRAINT", "SQLITE_MISMATCH", "SQLITE_TOOBIG", "SQLITE_RANGE"}
)


def is_outage(exc: BaseException) -> bool:
    """Whether an error means "the database cannot be reached now" (wait, retry) rather
    than "this statement is wrong".  Drivers differ: asyncpg reports a refused
    connection as a bare DBAPIError, and SQLite reports both a locked file and a
    syntax error as OperationalError, so the driver's own code decides where it
    has one; a driver error without one counts as an outage.  A statement error is
    never answered 503: that status only ever means the store is really down."""
    if isinstance(exc, _STATEMENT_ERRORS):
        return False
    if isinstance(exc, sa_exc.DBAPIError):
        original = exc.orig
        sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _STATEMENT_SQLSTATES:
            return False
        if getattr(original, "sqlite_errorname", None) in _STATEMENT_SQLITE:
            return False
    return isinstance(exc, (sa_exc.DBAPIError, OSError, TimeoutError, *_POOL_ERRORS))


def unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"the database is unavailable: {short_message(exc)}")


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
