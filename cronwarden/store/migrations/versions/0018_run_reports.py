"""What a job reports: the hash of its run's report token, and its stage, progress
and output (JSON text), all nullable and none of them indexed.

Revision ID: 0018
Revises: 0017
Create Date: 2027-01-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

COLUMNS = (
    ("report_token_sha256", sa.String(64)),
    ("stage", sa.Text()),
    ("progress", sa.Float()),
    ("output", sa.Text()),
)


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
