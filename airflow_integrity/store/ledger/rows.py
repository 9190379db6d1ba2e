"""Turn the ledger's driver rows into entries and history, with every time as an aware UTC datetime."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from airflow_integrity.store.ledger.entries import HistoryEntry, LedgerEntry, State
from airflow_integrity.store.ledger.sql import CLAIM_COLUMNS, ENTRY_COLUMNS, HISTORY_COLUMNS

_ENTRY = tuple(name.strip() for name in ENTRY_COLUMNS.split(","))
_CLAIM = tuple(name.strip() for name in CLAIM_COLUMNS.split(","))
_HISTORY = tuple(name.strip() for name in HISTORY_COLUMNS.split(","))


def timestamp(value: Any) -> dt.datetime | None:
    """A database time as an aware UTC datetime (SQLite stores UTC text, PostgreSQL ``timestamptz``)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def required_timestamp(value: Any) -> dt.datetime:
    """Like ``timestamp`` for a column that is never NULL."""
    stamp = timestamp(value)
    if stamp is None:
        raise ValueError("a required ledger timestamp is NULL")
    return stamp


def _json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def entry_from_row(row: Sequence[Any]) -> LedgerEntry:
    """A ``LedgerEntry`` from a row of ``ENTRY_COLUMNS`` (extra trailing columns are ignored)."""
    m = dict(zip(_ENTRY, row, strict=False))
    return LedgerEntry(
        namespace=m["namespace"],
        key=m["idempotency_key"],
        fingerprint=m["fingerprint"],
        state=State(m["state"]),
        retryable=None if m["retryable"] is None else bool(m["retryable"]),
        holder=json.loads(m["holder"]),
        origin=json.loads(m["origin"]),
        previous_state=m["previous_state"],
        previous_holder=_json(m["previous_holder"]),
        fencing_token=int(m["fencing_token"]),
        lease_seconds=float(m["lease_seconds"]),
        lease_expires_at=timestamp(m["lease_expires_at"]),
        attempts=int(m["attempts"]),
        result_size=m["result_size"],
        result_sha256=m["result_sha256"],
        result_by_reference=m["result_ref"] is not None,
        error=m["error"],
        last_event=m["last_event"],
        last_person=m["last_person"],
        last_reason=m["last_reason"],
        created_at=required_timestamp(m["created_at"]),
        updated_at=required_timestamp(m["updated_at"]),
        completed_at=timestamp(m["completed_at"]),
        expires_at=timestamp(m["expires_at"]),
        result_json=m["result_json"],
        result_ref=m["result_ref"],
        fingerprint_scheme=int(m["fingerprint_scheme"]),
    )


def claimed_entry(
    row: Sequence[Any],
    *,
    namespace: str,
    key: str,
    fingerprint: str,
    holder: dict[str, Any],
    holder_json: str,
    lease_seconds: float,
) -> LedgerEntry:
    """The entry a winning claim created, from its ``CLAIM_COLUMNS`` row and what the claimant sent."""
    m = dict(zip(_CLAIM, row, strict=True))
    # On a first claim the origin is the claimant itself.
    origin = dict(holder) if m["origin"] == holder_json else json.loads(m["origin"])
    return LedgerEntry(
        namespace=namespace,
        key=key,
        fingerprint=fingerprint,
        state=State.IN_PROGRESS,
        retryable=None,
        holder=holder,
        origin=origin,
        previous_state=m["previous_state"],
        previous_holder=_json(m["previous_holder"]),
        fencing_token=int(m["fencing_token"]),
        lease_seconds=lease_seconds,
        lease_expires_at=timestamp(m["lease_expires_at"]),
        attempts=int(m["attempts"]),
        result_size=None,
        result_sha256=None,
        result_by_reference=False,
        error=None,
        last_event=m["last_event"],
        last_person=None,
        last_reason=None,
        created_at=required_timestamp(m["created_at"]),
        updated_at=required_timestamp(m["updated_at"]),
        completed_at=None,
        expires_at=timestamp(m["expires_at"]),
        fingerprint_scheme=int(m["fingerprint_scheme"]),
    )


def history_from_row(row: Sequence[Any]) -> HistoryEntry:
    """A ``HistoryEntry`` from a row of ``HISTORY_COLUMNS``."""
    m = dict(zip(_HISTORY, row, strict=True))
    return HistoryEntry(
        seq=int(m["id"]),
        event=m["event"],
        at=required_timestamp(m["at"]),
        state=m["state"],
        previous_state=m["previous_state"],
        fencing_token=m["fencing_token"],
        fingerprint=m["fingerprint"],
        holder=_json(m["holder"]),
        previous_holder=_json(m["previous_holder"]),
        person=m["person"],
        reason=m["reason"],
        error=m["error"],
        result_sha256=m["result_sha256"],
        result_size=m["result_size"],
        details=_json(m["details"]),
    )
