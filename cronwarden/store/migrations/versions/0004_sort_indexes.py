"""Indexes for sorting run lists by start, end, exit code and duration.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

Each sort reads in the order of an index (field, created_at, id); task_name, status and
created_at already had theirs.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SORTS = ("start_at", "end_at", "exit_code", "duration_ms")


def upgrade() -> None:
    for field in SORTS:
        op.create_index(f"ix_runs_{field}", "runs", [field, "created_at", "id"])


def downgrade() -> None:
    for field in SORTS:
        op.drop_index(f"ix_runs_{field}", table_name="runs")
