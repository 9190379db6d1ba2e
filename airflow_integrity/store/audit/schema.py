"""Names, SQL fragments and row mapping shared by the audit modules.

An event row holds ``seq``, ``body`` (the canonical JSON the hash covers, see
:mod:`airflow_integrity.store.audit.event`), ``prev_hash`` and ``hash``. Fields are filtered on through the
body itself: on PostgreSQL through ``doc``, a jsonb copy of the body the database generates; on SQLite
through ``json_extract(body, ...)``. Both are indexed (migration a1).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from airflow_integrity.store.audit.event import AuditRecord

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


class EventContent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """The fields of a stored event body, each of the JSON type :func:`canonical_body` writes; ``recorded_at``
    an RFC 3339 time with its zone (read by msgspec in C: a day past its month's last is refused), in UTC once
    :func:`content_of` has read it."""

    actor: str
    bundle_version: str | None
    business_key: str | None
    dag_id: str | None
    dag_version: str | None
    details: dict[str, Any]
    event_id: str
    event_type: str
    map_index: int | None
    recorded_at: Annotated[datetime, msgspec.Meta(tz=True)]
    run_id: str | None
    task_id: str | None
    try_number: int | None


_decode = msgspec.json.Decoder(EventContent).decode


def content_of(body: Any) -> EventContent | None:
    """The fields of a stored event body, or ``None`` when the body is not an event's JSON: not JSON, not an
    object, other fields, a field of the wrong type, or no time (a damaged or tampered row)."""
    try:
        content = _decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, TypeError):
        return None
    if content.recorded_at.utcoffset():  # a time written with another offset: kept as its UTC moment
        try:
            utc = content.recorded_at.astimezone(UTC)
        except OverflowError:  # the moment lies before year 1 or after 9999 in UTC
            return None
        return msgspec.structs.replace(content, recorded_at=utc)
    return content


def record_from_content(seq: int, content: EventContent, prev_hash: str, hash_: str) -> AuditRecord:
    """Build an :class:`AuditRecord` from the fields :func:`content_of` read."""
    return AuditRecord(
        seq=seq,
        prev_hash=prev_hash,
        hash=hash_,
        **msgspec.structs.asdict(content),
    )


def record_from_row(seq: int, body: str, prev_hash: str, hash_: str) -> AuditRecord:
    """Build an :class:`AuditRecord` from a stored row (``seq, body, prev_hash, hash``).

    Raises:
        ValueError: The body is not an event's canonical JSON (a damaged or tampered row).
    """
    content = content_of(body)
    if content is None:
        raise ValueError(f"the body of event {seq} is not an event's JSON")
    return record_from_content(seq, content, prev_hash, hash_)
