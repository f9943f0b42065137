"""Finding runs: by a piece of text in their task name, error, params or tags (a
search), served by an index on either database (migrations 0005 and 0013): an FTS5
trigram table on SQLite, a GIN trigram index on PostgreSQL.  Both match
case-insensitively; a term shorter than 3 characters has no trigram, so no index can
narrow it (it is then a scan).  And by tags, exactly (``tags_condition``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from cronwarden.model import Run

RUNS = Run.__table__  # type: ignore[attr-defined]

TRIGRAM = 3  # characters a term needs before a trigram index can narrow it
# The searched text of a run (PostgreSQL: the indexed expression, written exactly so).
SEARCH_TEXT_PG = (
    "task_name || ' ' || coalesce(error, '') || ' ' || (params::text) || ' ' || (tags::text)"
)


def sqlite_search_text(row: str) -> str:
    return (
        f"{row}.task_name || ' ' || coalesce({row}.error, '') || ' ' || {row}.params"
        f" || ' ' || {row}.tags"
    )


def tags_condition(tags: Sequence[str], dialect: str) -> Any:
    """Runs that carry every tag of ``tags``.  PostgreSQL: one containment test on the
    JSONB column, served by its GIN index (migration 0013).  SQLite: each tag quoted as
    the JSON text holds it (a tag has no quote or backslash, so it is written as is),
    checked row by row along the sort's index, case-sensitively (instr, not LIKE)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql  # its dialect's: loaded on PostgreSQL only

        wanted = sa.cast(sa.literal(json.dumps(list(tags))), postgresql.JSONB)
        return RUNS.c.tags.op("@>")(wanted)
    return sa.and_(*(sa.func.instr(RUNS.c.tags, f'"{tag}"') > 0 for tag in tags))


def search_condition(term: str, dialect: str, rowids: tuple[int, int] | None = None) -> Any:
    """A WHERE condition on runs: ``term`` in the task name, the error or the params.

    ``rowids`` (SQLite, terms of 3 characters or more) limits the FTS to runs whose
    rowid is in that range: the FTS then reads only that stretch of each trigram's
    list instead of every match in the table."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    if dialect == "postgresql":
        return sa.literal_column(f"({SEARCH_TEXT_PG})").ilike(pattern, escape="\\")
    fts = sa.table("runs_search", sa.column("rowid"), sa.column("body"))
    if len(term) >= TRIGRAM:
        # A quoted phrase: with the trigram tokenizer, a substring anywhere, its
        # characters literal.  (FTS5 serves LIKE only without ESCAPE, so % and _
        # could not be searched for that way.)
        phrase = '"' + term.replace('"', '""') + '"'
        matching: Any = sa.literal_column("runs_search").op("MATCH")(phrase)
        if rowids is not None:
            matching = sa.and_(matching, fts.c.rowid.between(*rowids))
    else:
        matching = fts.c.body.like(pattern, escape="\\")
    return sa.literal_column("runs.rowid").in_(sa.select(fts.c.rowid).where(matching))
