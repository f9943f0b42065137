"""Named locks and pools: a run's hold on a seat of one (a lock has one seat, a pool
``size``).  A hold counts while its run has not ended, so a run's end (a crash taken
over by a survivor included) frees its seats without a delete.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from cronwarden.column_types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("name", sa.String(110), primary_key=True),
        sa.Column("seat", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_holds_run", "holds", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_holds_run", "holds")
    op.drop_table("holds")
