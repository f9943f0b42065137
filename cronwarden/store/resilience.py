"""Telling a database that is briefly unreachable (a PostgreSQL restart, a failover, a
locked or full SQLite file) from a statement that is wrong: the first is waited out
(cronwarden/durable.py retries what must land), the second is the caller's error and
never a 503."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

from cronwarden.errors import StoreUnavailable, short_message

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


@contextlib.contextmanager
def outage_as_unavailable() -> Iterator[None]:
    """A database that cannot be reached is StoreUnavailable (the caller waits and looks
    again); any other error, a conflict included, is what it is.  A connection refused
    comes from asyncpg as a bare OSError that SQLAlchemy does not wrap."""
    try:
        yield
    except (sa_exc.SQLAlchemyError, OSError, TimeoutError) as exc:
        if is_outage(exc):
            raise unavailable(exc) from exc
        raise
