"""Alembic environment: migrations always run on a connection the daemon hands over."""

from alembic import context
from sqlmodel import SQLModel

import cronwarden.model  # noqa: F401  (registers the tables)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("cronwarden migrations run through cronwarden.store.migrate.migrate()")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
