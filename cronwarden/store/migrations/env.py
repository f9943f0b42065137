"""Alembic environment: migrations always run on a connection the daemon hands over."""

from alembic import context
from sqlmodel import SQLModel

from cronwarden.model import postgresql_index_options  # (registers the tables too)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("cronwarden migrations run through cronwarden.store.migrate.migrate()")

if connection.dialect.name == "postgresql":
    postgresql_index_options()

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
