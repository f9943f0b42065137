"""Initial schema: runs, task_state, nodes.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from cronwarden.column_types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("task_name", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("end_reason", sa.String(16)),
        sa.Column("exit_code", sa.Integer),
        sa.Column("signal", sa.Integer),
        sa.Column("triggered_by", sa.String(16), nullable=False),
        sa.Column("scheduled_for", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("start_at", UTCDateTime()),
        sa.Column("end_at", UTCDateTime()),
        sa.Column("duration_ms", sa.BigInteger),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("retry_of", sa.String(36)),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("pid", sa.Integer),
        sa.Column("node", sa.String(200), nullable=False),
        sa.Column("log_size", sa.BigInteger, nullable=False),
        sa.Column("log_truncated", sa.Boolean, nullable=False),
        sa.Column("task_hash", sa.String(64), nullable=False),
        sa.Column("error", sa.String),
        sa.Column("not_before", UTCDateTime()),
        sa.Column("proc_started", sa.BigInteger),
        sa.UniqueConstraint("task_name", "scheduled_for", "attempt", name="uq_runs_fire"),
    )
    op.create_index("ix_runs_created", "runs", ["created_at", "id"])
    op.create_index("ix_runs_task_created", "runs", ["task_name", "created_at", "id"])
    op.create_index("ix_runs_status_created", "runs", ["status", "created_at", "id"])
    op.create_index("ix_runs_idempotency", "runs", ["task_name", "idempotency_key"])
    op.create_table(
        "task_state",
        sa.Column("task_name", sa.String(100), primary_key=True),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("last_scheduled_for", UTCDateTime()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("nodes")
    op.drop_table("task_state")
    op.drop_table("runs")
