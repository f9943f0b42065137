"""Task state remembers run.too_long: the start of the newest run it was raised for.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-20
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_state") as batch:
        batch.add_column(
            sa.Column("too_long_alerted_start", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("task_state") as batch:
        batch.drop_column("too_long_alerted_start")
