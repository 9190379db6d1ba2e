"""Audit trail: indexes for reading the trail a page at a time, newest first, by any filter of the console.

Every filter of the events list (DAG, run, task, business key, event type, actor) is served by an index that
ends in ``seq``, so that "the newest 50 events of DAG x" reads 50 index entries however long the trail is; the
business-key and run indexes of revision a1 are replaced by their ``seq``-ordered forms (they serve the same
look-ups). Fields are read from the body as in a1: ``doc ->> 'name'`` on PostgreSQL, ``json_extract`` on
SQLite, the same expressions :func:`airflow_integrity.store.audit.schema.field_sql` writes.

Revision ID: a4
Revises: a3
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "a4"
down_revision = "a3"
branch_labels = None
depends_on = None

EVENT = "integrity_audit_event"
# Index name suffix -> the body fields it leads with; each ends in seq.
ORDERED = {
    "business_key_seq": ("business_key",),
    "dag_run_seq": ("dag_id", "run_id"),
    "dag_seq": ("dag_id",),
    "task_seq": ("task_id",),
    "event_type_seq": ("event_type",),
    "actor_seq": ("actor",),
}
REPLACED = {"business_key": ("business_key",), "dag_run": ("dag_id", "run_id")}


def _field(name: str, postgres: bool) -> str:
    return f"(doc ->> '{name}')" if postgres else f"json_extract(body, '$.{name}')"


def _create(suffix: str, fields: tuple[str, ...], postgres: bool, *, with_seq: bool) -> None:
    columns = [_field(name, postgres) for name in fields] + (["seq"] if with_seq else [])
    op.execute(f"CREATE INDEX ix_{EVENT}_{suffix} ON {EVENT} ({', '.join(columns)})")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for suffix, fields in ORDERED.items():
        _create(suffix, fields, postgres, with_seq=True)
    for suffix in REPLACED:
        op.execute(f"DROP INDEX ix_{EVENT}_{suffix}")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for suffix, fields in REPLACED.items():
        _create(suffix, fields, postgres, with_seq=False)
    for suffix in ORDERED:
        op.execute(f"DROP INDEX ix_{EVENT}_{suffix}")
