"""An index for searching runs by text in their task name, error and params.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

A substring can sit anywhere in those columns, which a B-tree cannot serve.  SQLite
gets an FTS5 table with the trigram tokenizer (kept in step with runs by triggers; it
answers LIKE '%term%' for terms of 3 characters or more); PostgreSQL a GIN trigram
index (pg_trgm) on the same text (store/search.py).

The FTS rows are keyed by the runs' rowid, which a VACUUM of the SQLite file may
renumber (runs has no INTEGER PRIMARY KEY): after a manual VACUUM, rebuild them with
``DELETE FROM runs_search; INSERT INTO runs_search (rowid, body) SELECT rowid, ...``
(the backfill below).  cronwarden itself never vacuums.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# The searched text as this revision made it (0013 added the tags): kept here, so that
# the migration makes the same schema whatever store/search.py says today.
SEARCH_TEXT_PG = "task_name || ' ' || coalesce(error, '') || ' ' || (params::text)"


def sqlite_search_text(row: str) -> str:
    return f"{row}.task_name || ' ' || coalesce({row}.error, '') || ' ' || {row}.params"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            f"CREATE INDEX ix_runs_search ON runs USING gin (({SEARCH_TEXT_PG}) gin_trgm_ops)"
        )
        return
    op.execute("CREATE VIRTUAL TABLE runs_search USING fts5(body, tokenize = 'trigram')")
    text = sqlite_search_text("runs")
    op.execute(f"INSERT INTO runs_search (rowid, body) SELECT rowid, {text} FROM runs")
    op.execute(
        "CREATE TRIGGER runs_search_insert AFTER INSERT ON runs BEGIN "
        f"INSERT INTO runs_search (rowid, body) VALUES (new.rowid, {sqlite_search_text('new')}); "
        "END"
    )
    op.execute(
        "CREATE TRIGGER runs_search_update AFTER UPDATE OF error, params ON runs "
        "WHEN new.error IS NOT old.error OR new.params IS NOT old.params BEGIN "
        f"UPDATE runs_search SET body = {sqlite_search_text('new')} WHERE rowid = new.rowid; "
        "END"
    )
    op.execute(
        "CREATE TRIGGER runs_search_delete AFTER DELETE ON runs BEGIN "
        "DELETE FROM runs_search WHERE rowid = old.rowid; END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_runs_search")
        return
    for trigger in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER runs_search_{trigger}")
    op.execute("DROP TABLE runs_search")
