"""Run tags and metadata (cronwarden/run_tags.py): a run's labels, its task's and its
trigger's, and the JSON object its trigger attached.  Tags are found exactly by the
run list's ``tag`` filter (PostgreSQL: JSONB with a GIN index for containment;
SQLite: checked along the sort's index) and by a search (store/search.py): the searched
text takes the tags in, so PostgreSQL's trigram index is made again on the new text
and SQLite's FTS triggers write it.  Runs recorded before have no tags: their FTS
rows keep the text they had, which holds all they can be found by.

On PostgreSQL the trigram index is built again over every run, which takes a while on
a large table (about half a minute per million runs); nodes starting meanwhile wait on
the migration lock.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# The searched text before and after this revision (store/search.py says it today).
TEXT_PG = "task_name || ' ' || coalesce(error, '') || ' ' || (params::text)"
TAGGED_TEXT_PG = f"{TEXT_PG} || ' ' || (tags::text)"


def sqlite_text(row: str, tagged: bool) -> str:
    text = f"{row}.task_name || ' ' || coalesce({row}.error, '') || ' ' || {row}.params"
    return f"{text} || ' ' || {row}.tags" if tagged else text


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    tags_type = postgresql.JSONB() if postgres else sa.JSON()
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("tags", tags_type, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("run_metadata", sa.JSON(), nullable=False, server_default="{}"))
    if postgres:
        op.execute("CREATE INDEX ix_runs_tags ON runs USING gin (tags jsonb_path_ops)")
        _pg_search_index(TAGGED_TEXT_PG)
    else:
        _sqlite_triggers(tagged=True)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("DROP INDEX ix_runs_tags")
        _pg_search_index(TEXT_PG)
    with op.batch_alter_table("runs") as batch:  # SQLite: the table made again, no triggers
        batch.drop_column("run_metadata")
        batch.drop_column("tags")
    if not postgres:
        _sqlite_triggers(tagged=False)
        # The table made again numbered its rows anew: the FTS rows follow (0005).
        op.execute("DELETE FROM runs_search")
        text = sqlite_text("runs", tagged=False)
        op.execute(f"INSERT INTO runs_search (rowid, body) SELECT rowid, {text} FROM runs")


def _pg_search_index(text: str) -> None:
    op.execute("DROP INDEX ix_runs_search")
    op.execute(f"CREATE INDEX ix_runs_search ON runs USING gin (({text}) gin_trgm_ops)")


def _sqlite_triggers(tagged: bool) -> None:
    """The FTS rows' triggers of 0005, writing the text with or without the tags."""
    columns = "error, params, tags" if tagged else "error, params"
    changed = " OR ".join(f"new.{c} IS NOT old.{c}" for c in columns.split(", "))
    op.execute("DROP TRIGGER IF EXISTS runs_search_insert")
    op.execute("DROP TRIGGER IF EXISTS runs_search_update")
    op.execute(
        "CREATE TRIGGER IF NOT EXISTS runs_search_delete AFTER DELETE ON runs BEGIN "
        "DELETE FROM runs_search WHERE rowid = old.rowid; END"
    )
    op.execute(
        "CREATE TRIGGER runs_search_insert AFTER INSERT ON runs BEGIN "
        f"INSERT INTO runs_search (rowid, body) VALUES (new.rowid, {sqlite_text('new', tagged)}); "
        "END"
    )
    op.execute(
        f"CREATE TRIGGER runs_search_update AFTER UPDATE OF {columns} ON runs "
        f"WHEN {changed} BEGIN "
        f"UPDATE runs_search SET body = {sqlite_text('new', tagged)} WHERE rowid = new.rowid; "
        "END"
    )
