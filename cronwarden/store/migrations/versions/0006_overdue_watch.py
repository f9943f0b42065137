"""Task state remembers the dead-man's switch: when watching began, when it alerted.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_state") as batch:
        batch.add_column(sa.Column("watched_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("overdue_alerted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_state") as batch:
        batch.drop_column("overdue_alerted_at")
        batch.drop_column("watched_since")
