"""The installation's key, which task hashes are keyed with (so a run's task_hash does
not let a reader test guesses of a secret_env value); one row, made by the first daemon
that starts on the database.  Runs recorded before keep the plain hash they ran with.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from cronwarden.column_types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "installation",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("hash_key", sa.LargeBinary(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_installation_one_row"),
    )


def downgrade() -> None:
    op.drop_table("installation")
