"""Idempotency ledger: one row per (namespace, key), an append-only history of its transitions, and a
table for results too large to keep inline.

History rows for state changes are written by database triggers, so every transition is recorded in
the same statement that makes it, whichever code (or person with SQL access) makes it.

Revision ID: l1
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "l1"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)

# Columns copied from the ledger row into each history row by the triggers.
_HISTORY_COLUMNS = (
    "ledger_id, namespace, idempotency_key, event, at, state, previous_state, fencing_token, fingerprint, "
    "holder, previous_holder, person, reason, error, result_sha256, result_size"
)
_NEW_VALUES = (
    "NEW.id, NEW.namespace, NEW.idempotency_key, {event}, NEW.updated_at, NEW.state, {prev_state}, "
    "NEW.fencing_token, NEW.fingerprint, NEW.holder, {prev_holder}, NEW.last_person, NEW.last_reason, "
    "NEW.error, NEW.result_sha256, NEW.result_size"
)
# A renewed lease changes none of these, so heartbeats leave no history.
_CHANGED = (
    "NEW.state {ne} OLD.state OR NEW.fencing_token {ne} OLD.fencing_token OR NEW.last_event {ne} OLD.last_event "
    "OR NEW.fingerprint {ne} OLD.fingerprint OR NEW.result_sha256 {ne} OLD.result_sha256 "
    "OR NEW.error {ne} OLD.error OR NEW.last_reason {ne} OLD.last_reason"
)
# Every ledger statement changes the last event or the fencing token; a change that does neither was
# made by hand (SQL) and is recorded as such.
_UPDATE_EVENT = (
    "CASE WHEN NEW.last_event = OLD.last_event AND NEW.fencing_token = OLD.fencing_token "
    "THEN 'altered_outside_ledger' ELSE NEW.last_event END"
)
_APPEND_ONLY = (
    "integrity_ledger_history is append-only: its rows are the record of what happened to each "
    "idempotency key and cannot be changed or deleted"
)


def _create_tables() -> None:
    op.create_table(
        "integrity_ledger",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(512), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("retryable", sa.Boolean, nullable=True),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("previous_state", sa.String(16), nullable=True),
        sa.Column("previous_holder", sa.Text, nullable=True),
        sa.Column("fencing_token", sa.BigInteger, nullable=False),
        sa.Column("lease_seconds", sa.Float, nullable=False),
        sa.Column("lease_expires_at", _TS, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("result_json", sa.Text, nullable=True),
        sa.Column("result_ref", sa.BigInteger, nullable=True),
        sa.Column("result_size", sa.BigInteger, nullable=True),
        sa.Column("result_sha256", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("last_event", sa.String(32), nullable=False),
        sa.Column("last_person", sa.String(256), nullable=True),
        sa.Column("last_reason", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("completed_at", _TS, nullable=True),
        sa.Column("expires_at", _TS, nullable=True),
        sa.UniqueConstraint("namespace", "idempotency_key", name="uq_integrity_ledger_namespace_key"),
        sa.CheckConstraint(
            "state IN ('in_progress', 'completed', 'failed', 'released')", name="ck_integrity_ledger_state"
        ),
    )
    op.create_table(
        "integrity_ledger_history",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("ledger_id", sa.BigInteger, nullable=False),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(512), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("state", sa.String(16), nullable=True),
        sa.Column("previous_state", sa.String(16), nullable=True),
        sa.Column("fencing_token", sa.BigInteger, nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("holder", sa.Text, nullable=True),
        sa.Column("previous_holder", sa.Text, nullable=True),
        sa.Column("person", sa.String(256), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("result_sha256", sa.String(64), nullable=True),
        sa.Column("result_size", sa.BigInteger, nullable=True),
        sa.Column("details", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_integrity_ledger_history_key", "integrity_ledger_history", ["namespace", "idempotency_key", "id"]
    )
    op.create_table(
        "integrity_ledger_blob",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(512), nullable=False),
        sa.Column("fencing_token", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )


def _postgres_triggers() -> None:
    insert_values = _NEW_VALUES.format(event="NEW.last_event", prev_state="NULL", prev_holder="NULL")
    update_values = _NEW_VALUES.format(event=_UPDATE_EVENT, prev_state="OLD.state", prev_holder="OLD.holder")
    op.execute(
        f"""
        CREATE FUNCTION integrity_ledger_record_history() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO integrity_ledger_history ({_HISTORY_COLUMNS}) VALUES ({insert_values});
            ELSE
                INSERT INTO integrity_ledger_history ({_HISTORY_COLUMNS}) VALUES ({update_values});
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER integrity_ledger_history_on_insert AFTER INSERT ON integrity_ledger "
        "FOR EACH ROW EXECUTE FUNCTION integrity_ledger_record_history()"
    )
    op.execute(
        "CREATE TRIGGER integrity_ledger_history_on_update AFTER UPDATE ON integrity_ledger "
        f"FOR EACH ROW WHEN ({_CHANGED.format(ne='IS DISTINCT FROM')}) "
        "EXECUTE FUNCTION integrity_ledger_record_history()"
    )
    op.execute(
        f"""
        CREATE FUNCTION integrity_ledger_history_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '{_APPEND_ONLY}';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER integrity_ledger_history_append_only BEFORE UPDATE OR DELETE ON integrity_ledger_history "
        "FOR EACH ROW EXECUTE FUNCTION integrity_ledger_history_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER integrity_ledger_history_no_truncate BEFORE TRUNCATE ON integrity_ledger_history "
        "FOR EACH STATEMENT EXECUTE FUNCTION integrity_ledger_history_refuse_change()"
    )


def _sqlite_triggers() -> None:
    insert_values = _NEW_VALUES.format(event="NEW.last_event", prev_state="NULL", prev_holder="NULL")
    update_values = _NEW_VALUES.format(event=_UPDATE_EVENT, prev_state="OLD.state", prev_holder="OLD.holder")
    op.execute(
        "CREATE TRIGGER integrity_ledger_history_on_insert AFTER INSERT ON integrity_ledger BEGIN "
        f"INSERT INTO integrity_ledger_history ({_HISTORY_COLUMNS}) VALUES ({insert_values}); END"
    )
    op.execute(
        "CREATE TRIGGER integrity_ledger_history_on_update AFTER UPDATE ON integrity_ledger "
        f"WHEN {_CHANGED.format(ne='IS NOT')} BEGIN "
        f"INSERT INTO integrity_ledger_history ({_HISTORY_COLUMNS}) VALUES ({update_values}); END"
    )
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER integrity_ledger_history_no_{action.lower()} BEFORE {action} "
            f"ON integrity_ledger_history BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
        )


def upgrade() -> None:
    _create_tables()
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()


def downgrade() -> None:
    keys = op.get_bind().execute(sa.text("SELECT count(*) FROM integrity_ledger")).scalar_one()
    if keys:
        raise RuntimeError(
            f"The idempotency ledger holds {keys} keys; downgrading would drop them, and every effect they "
            "guard could then run again. Keep revision l1, or archive the database and create a new store."
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE integrity_ledger_history CASCADE")
        op.execute("DROP TABLE integrity_ledger CASCADE")
        op.execute("DROP FUNCTION integrity_ledger_record_history()")
        op.execute("DROP FUNCTION integrity_ledger_history_refuse_change()")
    else:
        op.execute("DROP TABLE integrity_ledger_history")
        op.execute("DROP TABLE integrity_ledger")
    op.drop_table("integrity_ledger_blob")
