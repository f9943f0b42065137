"""Alembic environment: migrations always run on a connection the daemon hands over.

Alembic gets no ``target_metadata``: the migrations are written by hand, and the
process that runs them (store/migrate.py) then imports neither the tables (sqlmodel,
pydantic) nor the store.  To compare the tables with a database (autogenerate), give
it ``SQLModel.metadata`` after ``cronwarden.model.postgresql_index_options()`` on
PostgreSQL."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("cronwarden migrations run through cronwarden.store.migrate.migrate()")

context.configure(
    connection=connection,
    target_metadata=None,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
