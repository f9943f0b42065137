"""Several nodes on one database: nodes say where their API listens, which config they
run and their epoch (raised when a survivor takes over their runs, which fences the
node's later writes); a run can be asked to stop by a node that does not carry it; a
run holds one of its task's places under max_concurrent across all nodes (``slot``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("api_url", sa.String(300), nullable=True))
        batch.add_column(sa.Column("config_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("epoch", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("taken_over_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("taken_over_by", sa.String(200), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("stop_requested_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("slot", sa.Integer, nullable=True))
    held = sa.text("slot IS NOT NULL AND status <> 'ended'")
    op.create_index(
        "uq_runs_task_slot",
        "runs",
        ["task_name", "slot"],
        unique=True,
        postgresql_where=held,
        sqlite_where=held,
    )


def downgrade() -> None:
    op.drop_index("uq_runs_task_slot", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("slot")
        batch.drop_column("stop_requested_at")
    with op.batch_alter_table("nodes") as batch:
        for column in ("taken_over_by", "taken_over_at", "epoch", "config_hash", "api_url"):
            batch.drop_column(column)
