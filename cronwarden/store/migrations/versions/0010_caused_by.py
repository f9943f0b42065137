"""Chains: a run started by the end of another task's run names its cause
(``caused_by``: the run id, or the ids joined with "," for after_mode = "all"), and a
cause starts a task's run at most once (unique per task and cause, across nodes).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("caused_by", sa.Text(), nullable=True))
    op.create_index(
        "uq_runs_cause",
        "runs",
        ["task_name", "caused_by"],
        unique=True,
        postgresql_where=sa.text("caused_by IS NOT NULL"),
        sqlite_where=sa.text("caused_by IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_runs_cause", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("caused_by")
