"""Idempotency ledger: indexes for listing keys a page at a time, newest change first.

The console lists keys by namespace (and state), most recently changed first, with the row id as cursor;
the unique (namespace, key) index of l1 cannot serve that order.

Revision ID: l3
Revises: l2
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "l3"
down_revision = "l2"
branch_labels = None
depends_on = None

TABLE = "integrity_ledger"


def upgrade() -> None:
    op.create_index("ix_integrity_ledger_namespace_id", TABLE, ["namespace", "id"])
    op.create_index("ix_integrity_ledger_state_id", TABLE, ["namespace", "state", "id"])


def downgrade() -> None:
    op.drop_index("ix_integrity_ledger_state_id", TABLE)
    op.drop_index("ix_integrity_ledger_namespace_id", TABLE)
