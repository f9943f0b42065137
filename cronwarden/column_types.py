"""A column type of the tables, apart from them (model.py): the migrations use it,
and the process that runs them (store/migrate.py) then imports neither sqlmodel nor
pydantic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on every engine.

    SQLite keeps them as naive ISO text (which sorts correctly, so keyset pagination
    works on the raw column); PostgreSQL as ``timestamptz``.  Either way Python sees
    aware UTC datetimes and never a naive one.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # On SQLite the text is converted by datetime's own ISO 8601 code, in C, instead of
    # SQLAlchemy's regular expression and the steps above: a page of 50 runs has 200
    # instants, and that parse was most of the time the page spent past the query.
    # The text is the same ("2026-01-31 23:59:59.000000"), so is the sort order.

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_text(value: datetime | None) -> str | None:
            naive_utc = self.process_bind_param(value, dialect)
            return None if naive_utc is None else naive_utc.isoformat(" ", "microseconds")

        return to_text

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def from_text(value: str | None) -> datetime | None:
            # Inline, not through process_result_value: eight of these a run's row.  The
            # stored form is read with its zone written on: 0.16 us, where parsing it
            # naive and replacing the zone took 1.0.
            if value is None:
                return None
            if len(value) == STORED_LENGTH:
                return datetime.fromisoformat(value + "+00:00")
            parsed = datetime.fromisoformat(value)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

        return from_text


# SQLite's text of an instant: "2026-01-31 23:59:59.000000", naive UTC.
STORED_LENGTH = 26
# PostgreSQL's to_char pattern of the API's form (support/timefmt.py): milliseconds
# truncated, as datetime.isoformat truncates them.
_WIRE_PATTERN = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'


def wire_text(column: str, dialect: str) -> Any:
    """The column named ``column`` (a UTCDateTime) as the API writes instants
    ("2026-01-31T23:59:59.000Z"), made by the database: a page of 50 runs has up to 300
    instants, and reading each into a datetime to write it out again was a fifth of the
    page's time.  NULL for a NULL instant, and on SQLite for a text not in the stored
    form (the caller formats the instant itself then).

    One literal SQL expression, built from a column name of the tables (never from a
    request): a statement's cache key is worked out on every execution, and the same
    expression built of SQLAlchemy's elements made that key ten times as long to work out."""
    if dialect == "postgresql":
        sql = f"to_char(timezone('UTC', {column}), '{_WIRE_PATTERN}')"
    else:
        sql = (
            f"CASE WHEN length({column}) = {STORED_LENGTH} "
            f"THEN substr({column}, 1, 10) || 'T' || substr({column}, 12, 12) || 'Z' END"
        )
    return sa.literal_column(sql, sa.String)
