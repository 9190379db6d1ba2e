"""The chain at a glance, a verification on demand, and the signed checkpoints (store-wide data).

A verification run through the API is itself an audit event, ``audit.verified``, recorded with the user and the
outcome; the status shows the newest one ("verified up to seq N at time T by U").
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from airflow_integrity.plugin.api.access import AccessDep
from airflow_integrity.plugin.api.models import CheckpointPage, VerificationRun, VerificationStatus
from airflow_integrity.plugin.api.store import open_store

router = APIRouter(tags=["Verification"])
VERIFIED_EVENT = "audit.verified"


def _configured_key() -> tuple[Any, str | None]:
    """The configured checkpoint key and, when it cannot be loaded, why."""
    from airflow_integrity.hooks.audit_checkpoints import load_checkpoint_key
    from airflow_integrity.settings import load_settings
    from airflow_integrity.store import StoreError

    conn_id = load_settings().checkpoint_key_conn_id
    if not conn_id:
        return None, None
    try:
        return load_checkpoint_key(conn_id), None
    except StoreError as exc:
        return None, str(exc)


def _checkpoint(checkpoint: Any, key: Any, identity: str) -> dict[str, Any]:
    valid = None
    if key is not None and checkpoint.key_id == key.key_id and checkpoint.algorithm == key.algorithm:
        valid = checkpoint.signed_by(key, identity)
    return {
        "id": checkpoint.id,
        "seq": checkpoint.seq,
        "head_hash": checkpoint.head_hash,
        "created_at": checkpoint.created_at,
        "key_id": checkpoint.key_id,
        "algorithm": checkpoint.algorithm,
        "signature_valid": valid,
    }


def _run_from_event(row: Any) -> dict[str, Any] | None:
    if row.record is None:
        return None
    details = dict(row.record.details)
    fields = set(VerificationRun.model_fields) - {"verified_at", "verified_by"}
    if not fields <= set(details):
        return None
    run = {name: details[name] for name in fields}
    return {**run, "verified_at": row.record.as_dict()["recorded_at"], "verified_by": row.record.actor}


@router.get("/verification", response_model=VerificationStatus, summary="The chain at a glance")
def verification_status(access: AccessDep) -> dict[str, Any]:
    """The newest chained event, the events waiting to be chained, the newest recorded verification and the
    newest checkpoint with whether its signature verifies with the configured key."""
    from airflow_integrity.store.audit import query
    from airflow_integrity.store.audit.signing import newest_checkpoint, store_id
    from airflow_integrity.store.audit.verify import pending_events

    access.require_read(None)
    key, key_error = _configured_key()
    with open_store() as store:
        head = query.head(store)
        pending = pending_events(store)
        newest = query.page(store, query.EventFilter(event_type=VERIFIED_EVENT, without_dag=True), limit=1)
        with store.read() as conn:
            checkpoint = newest_checkpoint(conn)
            identity = store_id(conn) if checkpoint is not None else ""
    return {
        "head_seq": head,
        "pending": pending,
        "last_verification": _run_from_event(newest[0]) if newest else None,
        "last_checkpoint": _checkpoint(checkpoint, key, identity) if checkpoint is not None else None,
        "checkpoint_key": key.key_id if key is not None else None,
        "checkpoint_key_error": key_error,
    }


@router.post("/verification", response_model=VerificationRun, summary="Verify the whole chain now")
def run_verification(access: AccessDep) -> dict[str, Any]:
    """Chain what is pending, verify every event and checkpoint (signatures with the configured key), record
    the outcome as an ``audit.verified`` event with the user, and return it: on a broken chain, the first bad
    seq and the reason."""
    from airflow_integrity.hooks.events import build_event
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.store.audit.chain import AuditLog
    from airflow_integrity.store.audit.verify import verify

    access.require_store_wide_edit()
    key, _ = _configured_key()
    with open_store() as store:
        AuditLog(store).chain_pending()
        result = verify(store, key=key)
        outcome = {**result.as_dict(), "summary": result.summary()}
        IntegrityCheckHook().record_event(
            build_event(VERIFIED_EVENT, details={**outcome, "via": "integrity API"}, user=access.name), chain=True
        )
    return {**outcome, "verified_by": access.name}


@router.get("/checkpoints", response_model=CheckpointPage, summary="Signed checkpoints, newest first")
def checkpoints(
    access: AccessDep,
    cursor: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="next_cursor of a previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Checkpoints newest first, each with whether its signature verifies with the configured key."""
    from airflow_integrity.store.audit.signing import page_checkpoints, store_id

    access.require_read(None)
    key, _ = _configured_key()
    with open_store() as store, store.read() as conn:
        identity = store_id(conn)
        rows = page_checkpoints(conn, before=cursor, limit=limit)
    more = len(rows) == limit
    return {
        "checkpoints": [_checkpoint(cp, key, identity) for cp in rows],
        "next_cursor": str(rows[-1].id) if more else None,
    }
