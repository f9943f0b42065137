"""Indexes for the runs that link to a run: its retries (``retry_of``) and its reruns
(``rerun_of``), read together for a run's detail (store/links.py).  Partial: only the
rows that link have an entry, so the many runs that do not cost nothing.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

LINKS = ("retry_of", "rerun_of")


def upgrade() -> None:
    for column in LINKS:
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            f"ix_runs_{column}", "runs", [column], postgresql_where=where, sqlite_where=where
        )


def downgrade() -> None:
    for column in LINKS:
        op.drop_index(f"ix_runs_{column}", "runs")
