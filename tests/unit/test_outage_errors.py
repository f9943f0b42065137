"""Which driver errors mean "the store is down" (retry, 503) and which mean "this
statement is wrong" (never a 503): real errors from SQLite, and PostgreSQL's codes."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import exc as sa_exc

from cronwarden.store.resilience import is_outage


def _sqlite_error(sql: str, connection: sqlite3.Connection, *params: object) -> sqlite3.Error:
    try:
        connection.execute(sql, params)
    except sqlite3.Error as exc:
        return exc
    raise AssertionError(f"{sql!r} did not fail")


def test_a_bad_statement_on_sqlite_is_not_an_outage(tmp_path) -> None:
    connection = sqlite3.connect(tmp_path / "db")
    connection.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    bad = _sqlite_error("SELECT * FROM t WHERE t MATCH ?", connection, '"a\x00bc')
    wrapped = sa_exc.OperationalError("SELECT", {}, bad)
    assert not is_outage(wrapped)


def test_a_locked_sqlite_file_is_an_outage(tmp_path) -> None:
    path = tmp_path / "db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    waiter = sqlite3.connect(path, timeout=0)
    locked = _sqlite_error("SELECT * FROM t", waiter)
    assert is_outage(sa_exc.OperationalError("SELECT", {}, locked))


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "outage"),
    [
        ("22021", False),  # a NUL byte in text
        ("22003", False),  # a number out of range
        ("42601", False),  # syntax
        ("08006", True),  # connection failure
        ("57P01", True),  # the server is shutting down
        ("53300", True),  # too many connections
        ("40001", True),  # serialization: retry
    ],
)
def test_postgresql_codes_decide(sqlstate: str, outage: bool) -> None:
    assert is_outage(sa_exc.DBAPIError("SELECT", {}, _PgError(sqlstate))) is outage


def test_a_refused_connection_is_an_outage() -> None:
    assert is_outage(ConnectionRefusedError(111, "refused"))
    assert is_outage(sa_exc.DBAPIError("SELECT", {}, ConnectionRefusedError()))
