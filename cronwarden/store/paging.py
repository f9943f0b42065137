"""Pages of the run list: the sorts, their keyset cursors, and which way a cursor reads.

A page hands out two cursors.  ``next_cursor`` holds its last run's key: the next page
is the runs after it, as they are when it is asked for (runs added meanwhile that sort
after it are seen, those that sort before it are not: a walk never shows a run twice).
``prev_cursor`` leads back to the page before, exactly as it was read: it holds the
first run of that page (handed on by the next_cursor that led here), this page's first
run, and the instant that page was read at.  The page before is read again between the
two, among the runs that existed at that instant, so runs added since (in any sort,
wherever they would land) do not push it out of shape.

A page reached back has a prev_cursor to the page before it as the walk saw it: the
runs just before it that existed when the page after it was read (exact, unless runs
landed inside that page in the moments between the reads of the two pages).  Once the
walk's start is reached, it leads to the runs added before it since, if there are any;
the first page (no cursor, no offset) has none.  A cursor keeps its sort, not its
filters: it is a place in the order, whatever the filters around it.

Both stores page through ``read_page`` (the SQL store with queries, the in-memory double
over its list): one description of a page, kept the same for both.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from cronwarden.column_types import UTCDateTime
from cronwarden.config import TASK_NAME_RE
from cronwarden.errors import InvalidCursor
from cronwarden.model import Run, Status
from cronwarden.run_sorts import NULLABLE_SORTS, SORT_FIELDS

_NULLABLE = set(NULLABLE_SORTS)
_INSTANTS = {"created_at", "start_at", "end_at"}
_NEXT, _BACK = "n", "p"


@dataclass
class RunPage:
    # Rows of the runs table (attributes named as Run's fields), not Run instances: a
    # page is read to be shown, and building ORM instances cost as much as the query.
    runs: list[sa.Row[Any]]
    next_cursor: str | None
    has_next: bool
    total: int | None = None
    prev_cursor: str | None = None


@dataclass(frozen=True)
class Cursor:
    """Where a page starts, decoded.

    A next cursor: the runs after ``at``; ``edge`` is the first run of the page that
    handed it out and ``as_of`` when that page was read (they make the next page's
    prev_cursor).  A back cursor: the page that ends before ``at`` (None: not bounded)
    and starts at ``edge`` (None: the page just before ``at``), read among the runs
    listed by ``as_of`` (None: now)."""

    back: bool
    at: list[Any] | None
    edge: list[Any] | None = None
    as_of: datetime | None = None


@dataclass(frozen=True)
class Read:
    """One read of a page's rows: from ``start`` (left out unless ``inclusive``) in the
    sort's order, or against it (``backward``), short of ``stop``, among the runs listed
    by ``as_of`` (None: now)."""

    start: list[Any] | None = None
    inclusive: bool = False
    stop: list[Any] | None = None
    backward: bool = False
    as_of: datetime | None = None

    @property
    def plain(self) -> bool:
        """Forward from a run (or the top), unbounded, as of now: a first or next page."""
        return not (self.inclusive or self.backward) and self.stop is None and self.as_of is None


# Rows of one read: (the read, how many rows the page wants, offset) -> up to that many
# plus one (the extra one says there are more), in the read's order.
Fetch = Callable[[Read, int, int], Sequence[Any]]


def read_page(
    fetch: Fetch,
    order: RunOrder,
    cursor: Cursor | None,
    *,
    limit: int,
    offset: int,
    now: datetime,
) -> RunPage:
    """A page and its cursors, read through ``fetch`` (see the module docstring).

    A back cursor whose page is gone (its runs deleted meanwhile) reads the page just
    before its end instead, and failing that the first page: going back never strands
    a client on an empty page while runs remain."""
    if cursor is not None and cursor.back and offset:
        raise InvalidCursor("a prev_cursor reads the page before its own; it takes no offset")
    reads = _reads(cursor)
    for read in reads:
        rows = list(fetch(read, limit, offset if read.plain else 0))
        if rows:
            break
    more = len(rows) > limit
    rows = rows[:limit]
    if read.backward:
        rows.reverse()
    first = order.key(rows[0]) if rows else None
    has_next = (more or read.stop is not None) if not read.backward else bool(rows)
    next_cursor = None
    if has_next and rows:
        later = Cursor(False, at=order.key(rows[-1]), edge=first, as_of=read.as_of or now)
        next_cursor = order.encode(later)
    back = _back_from(read, cursor, first, more=more, offset=offset, fetch=fetch)
    prev_cursor = None if back is None else order.encode(back)
    return RunPage(rows, next_cursor, has_next, prev_cursor=prev_cursor)


def _reads(cursor: Cursor | None) -> list[Read]:
    """The reads of a page, tried in turn until one finds runs."""
    if cursor is None:
        return [Read()]
    if not cursor.back:
        return [Read(start=cursor.at)]
    reads = []
    if cursor.edge is not None:
        reads.append(Read(cursor.edge, inclusive=True, stop=cursor.at, as_of=cursor.as_of))
    if cursor.at is not None:
        reads.append(Read(cursor.at, backward=True, as_of=cursor.as_of))
    return [*reads, Read()]


def _back_from(
    read: Read,
    cursor: Cursor | None,
    first: list[Any] | None,
    *,
    more: bool,
    offset: int,
    fetch: Fetch,
) -> Cursor | None:
    """The cursor back from a page read by ``read`` whose first run is ``first``."""
    if read.backward or read.inclusive:
        if first is None:
            return None
        # A page read again: the page before it as the walk saw it (among the runs of
        # the same instant); once the walk's start is reached, the runs added before
        # it since, if any.
        if more if read.backward else _any(fetch, Read(first, backward=True, as_of=read.as_of)):
            return Cursor(True, at=first, as_of=read.as_of)
        if read.as_of is not None and _any(fetch, Read(first, backward=True)):
            return Cursor(True, at=first)
        return None
    if cursor is None or cursor.back:  # the first page (or one reached by an offset)
        return Cursor(True, at=first) if offset and first is not None else None
    if first is None and cursor.edge is None:
        return None
    # A next page: back to the page that handed out the cursor, as it was read.
    return Cursor(True, at=first, edge=cursor.edge, as_of=cursor.as_of)


def _any(fetch: Fetch, read: Read) -> bool:
    return bool(fetch(read, 0, 0))


class RunOrder:
    """A sort of the run list and its keyset cursors.

    The key is (field, created_at, id) (just (created_at, id) for created_at), each
    served by an index; a cursor holds keys and names its sort, so a cursor is never
    applied to another sort.  A nullable field is read in two parts, each in index
    order: the runs with a value, then the runs without one (by created_at, id), rather
    than one query whose ORDER BY no index can serve.  Read backward, the parts come in
    the other order, each read against its index's order (an index serves both ways).
    """

    def __init__(self, field: str, ascending: bool) -> None:
        if field not in SORT_FIELDS:
            raise ValueError(f"cannot sort runs by {field!r}")
        self.field = field
        self.ascending = ascending

    def _columns(self, with_field: bool) -> list[Any]:
        tail = [col(Run.created_at), col(Run.id)]
        if not with_field or self.field == "created_at":
            return tail
        return [getattr(Run, self.field), *tail]

    def _beyond(
        self, columns: list[Any], values: list[Any], ascending: bool, inclusive: bool = False
    ) -> Any:
        """Rows whose key comes after ``values`` in the order ``ascending`` says (or at
        them, ``inclusive``): one row-value comparison, which an index range serves."""
        literals = [
            sa.literal(v, UTCDateTime()) if isinstance(v, datetime) else sa.literal(v)
            for v in values
        ]
        key, bound = sa.tuple_(*columns), sa.tuple_(*literals)
        if ascending:
            return key >= bound if inclusive else key > bound
        return key <= bound if inclusive else key < bound

    def up_to(self, position: list[Any]) -> Any:
        """Runs at or before ``position`` (created_at, id) in this order."""
        return sa.not_(self._beyond(self._columns(False), position, self.ascending))

    def _segments(self) -> list[tuple[list[Any], Any]]:
        """The parts of the order: (key columns, which runs), in the order's sequence."""
        if self.field not in _NULLABLE:
            return [(self._columns(True), None)]
        field = getattr(Run, self.field)
        return [(self._columns(True), field.is_not(None)), (self._columns(False), field.is_(None))]

    def _place(self, position: list[Any]) -> tuple[int, list[Any]]:
        """The part a key falls in, and the key within that part."""
        if self.field in _NULLABLE and position[0] is None:
            return 1, position[1:]
        return 0, position

    def parts(
        self,
        start: list[Any] | None = None,
        *,
        inclusive: bool = False,
        stop: list[Any] | None = None,
        backward: bool = False,
    ) -> list[Any]:
        """The queries of a read (see ``Read``) in the order they are read: each is
        served by an index in its ORDER BY.  ``stop`` bounds forward reads only."""
        ascending = self.ascending != backward
        segments = list(enumerate(self._segments()))
        if backward:
            segments.reverse()
        begin = None if start is None else self._place(start)
        end = None if stop is None else self._place(stop)
        queries = []
        for index, (columns, which) in segments:
            if begin is not None and (index > begin[0] if backward else index < begin[0]):
                continue  # wholly before the start
            if end is not None and index > end[0]:
                continue  # wholly past the stop
            order = (c.asc() if ascending else c.desc() for c in columns)
            query = sa.select(Run.__table__).order_by(*order)  # type: ignore[attr-defined]
            if which is not None:
                query = query.where(which)
            if begin is not None and index == begin[0]:
                query = query.where(self._beyond(columns, begin[1], ascending, inclusive))
            if end is not None and index == end[0]:
                query = query.where(self._beyond(columns, end[1], not ascending))
            queries.append(query)
        return queries

    def key(self, run: Any) -> list[Any]:
        """A run's key in this order (a row, a Run or a record)."""
        return [getattr(run, c.key) for c in self._columns(True)]

    def encode(self, cursor: Cursor) -> str:
        raw = json.dumps(
            [
                self.field,
                self.ascending,
                _BACK if cursor.back else _NEXT,
                _jsonable(cursor.as_of),
                _keyed(cursor.at),
                _keyed(cursor.edge),
            ],
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def decode(self, text: str) -> Cursor:
        """The cursor ``text`` holds; InvalidCursor if it is forged, or of another sort
        (its message then says which, and what to do)."""
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (ValueError, binascii.Error, RecursionError) as exc:
            raise InvalidCursor() from exc
        if not isinstance(raw, list) or len(raw) < 3:
            raise InvalidCursor()
        field, ascending = raw[0], raw[1]
        if field != self.field or ascending is not self.ascending:
            raise _other_sort(field, ascending)
        try:
            if len(raw) == 6 and raw[2] in (_NEXT, _BACK):
                return self._cursor(raw[2] == _BACK, raw[3], raw[4], raw[5])
            # A cursor of an earlier version: the key of the run a next page starts after.
            return Cursor(False, at=self._typed_key(raw[2:]))
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidCursor() from exc

    def _cursor(self, back: bool, as_of: Any, at: Any, edge: Any) -> Cursor:
        cursor = Cursor(
            back,
            at=None if at is None else self._typed_key(at),
            edge=None if edge is None else self._typed_key(edge),
            as_of=None if as_of is None else _instant(as_of),
        )
        if cursor.at is None and (not back or cursor.edge is None):
            raise ValueError("a cursor without a position")
        return cursor

    def _typed_key(self, values: Any) -> list[Any]:
        names = [c.key for c in self._columns(True)]
        if not isinstance(values, list) or len(values) != len(names):
            raise ValueError(values)
        return [_typed(name, value) for name, value in zip(names, values, strict=True)]


def _other_sort(field: Any, ascending: Any) -> InvalidCursor:
    """The refusal of a cursor handed out for another sort (or a forged one)."""
    if field not in SORT_FIELDS or not isinstance(ascending, bool):
        return InvalidCursor()
    direction = "asc" if ascending else "desc"
    return InvalidCursor(
        f"the cursor belongs to another sort (sort_field={field}, sort_direction={direction}): "
        "a cursor pages through the sort it was handed out with (filters may change, the "
        "sort may not); ask again with that sort, or without a cursor for the first page "
        "of this one"
    )


def _keyed(values: list[Any] | None) -> list[Any] | None:
    return None if values is None else [_jsonable(v) for v in values]


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _instant(value: Any) -> datetime:
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError(value)
    return when.astimezone(UTC)


# What a cursor's values may be, by column: exactly what the daemon writes there, so
# that a forged cursor is refused (InvalidCursor) before its values reach a query (a
# NUL in text or an integer beyond 64 bits is a database error, not a client's one).
_INT_RANGES = {"exit_code": (-(2**31), 2**31 - 1), "duration_ms": (-(2**63), 2**63 - 1)}
_STATUSES = frozenset(s.value for s in Status)


def _typed(name: str, value: Any) -> Any:
    """A cursor value back in its column's type; ValueError if it is not."""
    if value is None:
        if name in _NULLABLE:
            return None
        raise ValueError(name)
    if name in _INSTANTS:
        return _instant(value)
    if name in _INT_RANGES:
        low, high = _INT_RANGES[name]
        if type(value) is not int or not low <= value <= high:
            raise ValueError(name)
        return value
    if type(value) is not str or not _CURSOR_TEXT[name](value):
        raise ValueError(name)
    return value


def _is_run_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


_CURSOR_TEXT: dict[str, Callable[[str], bool]] = {
    "id": _is_run_id,
    "task_name": lambda v: TASK_NAME_RE.fullmatch(v) is not None,
    "status": lambda v: v in _STATUSES,
}
