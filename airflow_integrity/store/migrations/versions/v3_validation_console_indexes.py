"""Validation results: indexes for listing validations a page at a time, newest first.

The console lists stored validations newest first (``created_at``, then ``result_id`` as the cursor's tie
break), for the whole store, a DAG, or a DAG run; v1's (dag_id, run_id, task_id) index serves look-ups of
one run's validations but not that order.

Revision ID: v3
Revises: v2
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "v3"
down_revision = "v2"
branch_labels = None
depends_on = None

TABLE = "integrity_validation_result"


def upgrade() -> None:
    op.create_index("ix_integrity_validation_result_created", TABLE, ["created_at", "result_id"])
    op.create_index("ix_integrity_validation_result_dag_created", TABLE, ["dag_id", "created_at", "result_id"])


def downgrade() -> None:
    op.drop_index("ix_integrity_validation_result_dag_created", TABLE)
    op.drop_index("ix_integrity_validation_result_created", TABLE)
