"""What a run cost: CPU user and system seconds and peak memory of its process and the
descendants it waited for (the kernel's wait4 accounting), and the bytes it wrote.
Nullable: runs recorded before, runs that never started, re-adopted runs.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = (
    ("cpu_user_s", sa.Float()),
    ("cpu_system_s", sa.Float()),
    ("max_rss_bytes", sa.BigInteger()),
    ("output_bytes", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
