"""Idempotency keys in a table of their own, unique per (task, key).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Before, a key was only a column of runs with a plain index, so two concurrent requests
could both create a run.  Keys already recorded on runs in the last 24 h move to the
new table (newest run per key) so repeats of those requests still find their run.
"""

import sqlalchemy as sa
from alembic import op

from cronwarden.column_types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("task_name", sa.String(100), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    # Carry over existing keys.  Their request bodies were never recorded: an empty
    # fingerprint means "unknown", and any repeat within 24 h gets the earlier run.
    op.execute(
        """
        INSERT INTO idempotency_keys (task_name, key, run_id, fingerprint, created_at)
        SELECT r.task_name, r.idempotency_key, MAX(r.id), '', MAX(r.created_at)
        FROM runs r WHERE r.idempotency_key IS NOT NULL
        GROUP BY r.task_name, r.idempotency_key
        """
    )
    op.drop_index("ix_runs_idempotency", table_name="runs")


def downgrade() -> None:
    op.create_index("ix_runs_idempotency", "runs", ["task_name", "idempotency_key"])
    op.drop_table("idempotency_keys")
