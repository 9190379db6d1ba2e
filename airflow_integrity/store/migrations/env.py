"""Alembic environment: migrations always run on a connection handed in by ``store.migrate``."""

from __future__ import annotations

from alembic import context

from airflow_integrity.store.migrate import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run integrity store migrations through `airflow integrity db migrate`.")

context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
