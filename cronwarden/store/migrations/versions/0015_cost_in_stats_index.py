"""A task's stats sum what its runs cost: the (task_name, created_at, id) index carries
the cost columns as well, so the stats still read the index alone.

Without them each run of the window is read from the table (a lookup per row); with
them the index entry of a run grows by some 30 bytes.  Re-creating the index reads the
table once: a few seconds for 1,000,000 runs, at the first start after the upgrade.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TASK_INDEX = ["task_name", "created_at", "id"]
STATS = ["status", "end_reason", "end_at", "duration_ms"]
COST = ["cpu_user_s", "cpu_system_s", "max_rss_bytes", "output_bytes"]


def upgrade() -> None:
    op.drop_index("ix_runs_task_created", table_name="runs")
    op.create_index("ix_runs_task_created", "runs", TASK_INDEX + STATS + COST)


def downgrade() -> None:
    op.drop_index("ix_runs_task_created", table_name="runs")
    op.create_index("ix_runs_task_created", "runs", TASK_INDEX + STATS)
