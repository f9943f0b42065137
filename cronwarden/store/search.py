"""Searching runs by a piece of text in their task name, error or params, served by an
index on either database (migration 0005): an FTS5 trigram table on SQLite, a GIN
trigram index on PostgreSQL.  Both match case-insensitively; a term shorter than 3
characters has no trigram, so the index cannot narrow it (it is then a scan)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement

# The searched text of a run (PostgreSQL: the indexed expression, written exactly so).
SEARCH_TEXT_PG = "task_name || ' ' || coalesce(error, '') || ' ' || (params::text)"


def sqlite_search_text(row: str) -> str:
    return f"{row}.task_name || ' ' || coalesce({row}.error, '') || ' ' || {row}.params"


class RunSearch(ColumnElement[bool]):
    """``search`` as a WHERE condition on runs, compiled for the database at hand."""

    inherit_cache = False
    type = sa.Boolean()

    def __init__(self, term: str) -> None:
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        self.pattern = f"%{escaped}%"


@compiles(RunSearch, "postgresql")
def _postgresql(element: RunSearch, compiler: SQLCompiler, **kw: Any) -> str:
    pattern = compiler.process(sa.bindparam("search", element.pattern, unique=True), **kw)
    return f"({SEARCH_TEXT_PG}) ILIKE {pattern} ESCAPE '\\'"


@compiles(RunSearch)
def _sqlite(element: RunSearch, compiler: SQLCompiler, **kw: Any) -> str:
    pattern = compiler.process(sa.bindparam("search", element.pattern, unique=True), **kw)
    return f"runs.rowid IN (SELECT rowid FROM runs_search WHERE body LIKE {pattern} ESCAPE '\\')"
