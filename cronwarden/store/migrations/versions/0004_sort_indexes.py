"""Indexes for sorting run lists by start, end, exit code and duration, and for task
stats.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

Each sort reads in the order of an index (field, created_at, id); task_name, status and
created_at already had theirs.  The (task_name, created_at, id) index also carries the
outcome columns, so a task's stats over a window read the index alone.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SORTS = ("start_at", "end_at", "exit_code", "duration_ms")


TASK_INDEX = ["task_name", "created_at", "id"]
STATS = ["status", "end_reason", "end_at", "duration_ms"]


def upgrade() -> None:
    for field in SORTS:
        op.create_index(f"ix_runs_{field}", "runs", [field, "created_at", "id"])
    op.drop_index("ix_runs_task_created", table_name="runs")
    op.create_index("ix_runs_task_created", "runs", TASK_INDEX + STATS)


def downgrade() -> None:
    op.drop_index("ix_runs_task_created", table_name="runs")
    op.create_index("ix_runs_task_created", "runs", TASK_INDEX)
    for field in SORTS:
        op.drop_index(f"ix_runs_{field}", table_name="runs")
