"""Delayed runs and expiry: a run triggered with ``delay`` or ``run_at`` keeps the
instant it was asked to start no earlier than (``delayed_until``), and one triggered
with ``ttl`` the instant it expires unless started (``expires_at``); the end reason
``expired`` needs no schema (end_reason is text).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from cronwarden.column_types import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COLUMNS = ("delayed_until", "expires_at")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
