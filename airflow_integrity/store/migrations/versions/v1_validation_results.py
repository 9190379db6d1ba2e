"""Validation results: the full Great Expectations result of every validation, kept out of XCom.

Rows are written once and never changed: UPDATE and DELETE are refused by triggers, so a stored result
always is the result the audit event that names it refers to.

Revision ID: v1
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v1"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = "integrity_validation_result"
_REFUSED = "integrity_validation_result is append-only: a stored validation result cannot be changed or deleted"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("result_id", sa.String(36), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("suite_name", sa.String(250), nullable=False),
        sa.Column("suite_fingerprint", sa.String(80), nullable=False),
        sa.Column("data_fingerprint", sa.String(80), nullable=True),
        sa.Column("dag_id", sa.String(250), nullable=True),
        sa.Column("run_id", sa.String(250), nullable=True),
        sa.Column("task_id", sa.String(250), nullable=True),
        sa.Column("map_index", sa.Integer, nullable=True),
        sa.Column("try_number", sa.Integer, nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("full_result", sa.Text, nullable=False),
        sa.Column("full_result_sha256", sa.String(64), nullable=False),
        sa.CheckConstraint("status IN ('passed', 'warned', 'failed')", name="ck_integrity_validation_status"),
    )
    op.create_index("ix_integrity_validation_result_run", TABLE, ["dag_id", "run_id", "task_id"])
    op.create_index("ix_integrity_validation_result_data", TABLE, ["data_fingerprint"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION integrity_validation_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{_REFUSED}' USING ERRCODE = 'insufficient_privilege';
            END $$
            """
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION integrity_validation_refuse_change()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{_REFUSED}'); END"
            )


def downgrade() -> None:
    rows = op.get_bind().execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar_one()
    if rows:
        raise RuntimeError(
            f"The store holds {rows} validation results that audit events refer to; downgrading would drop "
            "them. Keep revision v1, or archive the database and create a new store."
        )
    op.drop_table(TABLE)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION integrity_validation_refuse_change()")
