"""Names, SQL fragments and row mapping shared by the audit modules.

An event row holds ``seq``, ``body`` (the canonical JSON the hash covers, see
:mod:`airflow_integrity.store.audit.event`), ``prev_hash`` and ``hash``. Fields are filtered on through the
body itself: on PostgreSQL through ``doc``, a jsonb copy of the body the database generates; on SQLite
through ``json_extract(body, ...)``. Both are indexed (migration a1).
"""

from __future__ import annotations

import json
from typing import Any

from airflow_integrity.store.audit.event import AuditRecord, parse_timestamp

EVENT = "integrity_audit_event"
INTAKE = "integrity_audit_intake"
CHECKPOINT = "integrity_audit_checkpoint"
AUDIT_TABLES = {"postgresql": (EVENT, INTAKE, CHECKPOINT), "sqlite": (EVENT, CHECKPOINT)}
# The intake table's columns written by a writer (PostgreSQL); the database adds id, txid and recorded_at.
CONTENT_COLUMNS = (
    "event_id",
    "event_type",
    "actor",
    "dag_id",
    "dag_version",
    "bundle_version",
    "run_id",
    "task_id",
    "map_index",
    "try_number",
    "business_key",
    "details",
)
RECORD_SELECT = "e.seq, e.body, e.prev_hash, e.hash"


def message_sql(dialect: str) -> str:
    """SQL for the bytes the hash of event row ``e`` covers: ``prev_hash "\\n" seq "\\n" body``."""
    if dialect == "postgresql":
        return "convert_to(e.prev_hash || E'\\n' || e.seq::text || E'\\n' || e.body, 'UTF8')"
    return "CAST(e.prev_hash || char(10) || CAST(e.seq AS TEXT) || char(10) || e.body AS BLOB)"


def field_sql(dialect: str, name: str, alias: str = "e") -> str:
    """SQL for the value of body field ``name`` of event row ``alias`` (text, NULL when absent or null)."""
    if dialect == "postgresql":
        return f"({alias}.doc ->> '{name}')"
    return f"json_extract({alias}.body, '$.{name}')"


def record_from_row(seq: int, body: str, prev_hash: str, hash_: str) -> AuditRecord:
    """Build an :class:`AuditRecord` from a stored row (``seq, body, prev_hash, hash``).

    Raises:
        ValueError: The body is not an event's canonical JSON (a damaged or tampered row).
    """
    fields: dict[str, Any] = json.loads(body)
    if not isinstance(fields, dict):
        raise ValueError(f"the body of event {seq} is not a JSON object")
    fields["recorded_at"] = parse_timestamp(fields["recorded_at"])
    return AuditRecord(seq=seq, prev_hash=prev_hash, hash=hash_, **fields)
