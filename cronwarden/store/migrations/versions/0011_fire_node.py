"""Where a job runs: ``fire_node`` on runs, and on PostgreSQL a fire's uniqueness per
node.

An ordinary fire's row has fire_node "" and stays one run across the nodes; an
on_every_node fire's row has the node's name, so each node claims its own row of the
same fire (cronwarden/placement.py).  On PostgreSQL, where nodes share the database,
the unique constraint uq_runs_fire becomes (task_name, scheduled_for, attempt,
fire_node).

On SQLite the constraint stays (task_name, scheduled_for, attempt): a SQLite database
has one daemon (the data_dir lock), whose on_every_node fire is its one row anyway.
Changing it there would rebuild the table: 18 s for 1,000,000 runs, and the rebuild
drops the run search's triggers and renumbers the rowids its FTS rows are keyed by
(migration 0005).  Adding the column is a change of the schema alone.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

FIRE = ["task_name", "scheduled_for", "attempt"]


def upgrade() -> None:
    op.add_column("runs", sa.Column("fire_node", sa.String(200), nullable=False, server_default=""))
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("uq_runs_fire", "runs", type_="unique")
        op.create_unique_constraint("uq_runs_fire", "runs", [*FIRE, "fire_node"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Two nodes' rows of one on_every_node fire cannot both stay under the old
        # uniqueness: all but one of them go.
        op.drop_constraint("uq_runs_fire", "runs", type_="unique")
        op.execute(
            "DELETE FROM runs WHERE fire_node <> '' AND id NOT IN (SELECT MIN(id) FROM runs "
            "WHERE fire_node <> '' GROUP BY task_name, scheduled_for, attempt)"
        )
        op.create_unique_constraint("uq_runs_fire", "runs", FIRE)
    # Not through batch mode: on SQLite that rebuilds the table (see above).
    op.execute("ALTER TABLE runs DROP COLUMN fire_node")
