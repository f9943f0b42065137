"""Run artifacts: one row per file a run left in $CRONWARDEN_ARTIFACTS_DIR, kept (with
its size and sha256) or dropped (with why), so any node can list them.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("n", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("task_name", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("dropped", sa.Text, nullable=True),
    )
    op.create_index("ix_artifacts_task", "artifacts", ["task_name", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_artifacts_task", "artifacts")
    op.drop_table("artifacts")
