"""Validation sample salt: a random secret per store that keys the fingerprints of sampled values.

With ``samples="hashed"`` a validation summary (XCom, the stored summary) carries HMAC-SHA256 fingerprints of
the unexpected values instead of the values. Unkeyed, a fingerprint of a low-entropy value (an age, a
diagnosis code, a date of birth) is found by hashing every candidate; keyed with this salt it can be checked
only by someone who can read the store. The salt is created here, once per store, from the operating
system's random source; it is never part of a summary, an audit event, an export or the store's status.

The row cannot be changed or deleted (database triggers): a new salt would make every stored fingerprint
uncheckable.

Revision ID: v2
Revises: v1
Create Date: 2026-12-04
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "v2"
down_revision = "v1"
branch_labels = None
depends_on = None

TABLE = "integrity_validation_secret"
_REFUSED = "integrity_validation_secret cannot be changed or deleted: stored sample fingerprints are keyed with it"


def upgrade() -> None:
    table = op.create_table(
        TABLE,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sample_salt", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_integrity_validation_secret_single_row"),
    )
    op.bulk_insert(table, [{"id": 1, "sample_salt": secrets.token_hex(32), "created_at": datetime.now(UTC)}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION integrity_validation_secret_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{_REFUSED}' USING ERRCODE = 'insufficient_privilege';
            END $$
            """
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_fixed BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION integrity_validation_secret_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION integrity_validation_secret_refuse_change()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{_REFUSED}'); END"
            )


def downgrade() -> None:
    rows = op.get_bind().execute(sa.text("SELECT count(*) FROM integrity_validation_result")).scalar_one()
    if rows:
        raise RuntimeError(
            f"The store holds {rows} validation results whose hashed samples are keyed with the salt that "
            "downgrading would drop. Keep revision v2, or archive the database and create a new store."
        )
    op.drop_table(TABLE)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION integrity_validation_secret_refuse_change()")
