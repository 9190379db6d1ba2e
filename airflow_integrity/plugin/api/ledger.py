"""The idempotency ledger: keys with their holders, leases, fencing tokens and history, and release by a person.

A key belongs to the DAG of its origin (the task that first claimed it with its current inputs); keys claimed
outside a DAG are store-wide. A release is recorded twice: in the key's own history (person and reason) and in
the audit trail as ``idempotency.released`` with the authenticated user as actor. A refused release (a live
holder works on the key, or it is released already) is recorded as ``idempotency.release_refused``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status

from airflow_integrity.plugin.api.access import Access, AccessDep
from airflow_integrity.plugin.api.models import LedgerKeyDetail, LedgerPage, ReleaseRequest, ReleaseResponse
from airflow_integrity.plugin.api.params import NO_NUL, Limit, Name
from airflow_integrity.plugin.api.store import open_store

router = APIRouter(tags=["Ledger"])
Namespace = Annotated[str, Path(min_length=1, max_length=128, pattern=NO_NUL)]


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def key_json(entry: Any) -> dict[str, Any]:
    """The API form of a :class:`~airflow_integrity.store.ledger.LedgerEntry` (never the result itself)."""
    view = entry.as_dict()
    return {
        **{
            name: view[name]
            for name in (
                "namespace",
                "key",
                "state",
                "retryable",
                "fencing_token",
                "attempts",
                "fingerprint",
                "holder",
                "origin",
                "lease_seconds",
                "result_size",
                "result_sha256",
                "error",
                "last_event",
                "last_person",
                "last_reason",
            )
        },
        "dag_id": key_dag(entry),
        **{
            name: _time(getattr(entry, name))
            for name in (
                "lease_expires_at",
                "created_at",
                "updated_at",
                "completed_at",
                "expires_at",
            )
        },
    }


def key_dag(entry: Any) -> str | None:
    """The DAG a key belongs to: its origin's."""
    dag_id = (entry.origin or {}).get("dag_id")
    return str(dag_id) if dag_id is not None else None


@router.get("/ledger/namespaces", response_model=list[str], summary="Namespaces that hold keys")
def namespaces(access: AccessDep) -> list[str]:
    """Every namespace with at least one key."""
    from airflow_integrity.store.ledger.listing import namespaces as listed

    with open_store() as store:
        return listed(store)


@router.get("/ledger/keys", response_model=LedgerPage, summary="Keys, most recently created first")
def list_keys(
    access: AccessDep,
    namespace: Annotated[str | None, Query(max_length=128, pattern=NO_NUL)] = None,
    state: Literal["in_progress", "completed", "failed", "released"] | None = None,
    dag_id: Name = None,
    run_id: Name = None,
    cursor: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="next_cursor of the previous page.")
    ] = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Keys the user may read, with state, holder, lease, fencing token, fingerprint and result size/hash."""
    from airflow_integrity.store.ledger.listing import KeyFilter
    from airflow_integrity.store.ledger.listing import list_keys as listed

    if dag_id is not None:
        access.require_read(dag_id)
    where = KeyFilter(
        namespace=namespace,
        state=state,
        dag_id=dag_id,
        run_id=run_id,
        readable_dags=access.readable_dags(),
        without_dag=access.store_wide_read,
    )
    with open_store() as store:
        rows = listed(store, where, before=cursor, limit=limit)
    more = len(rows) == limit
    return {"keys": [key_json(entry) for _, entry in rows], "next_cursor": str(rows[-1][0]) if more else None}


def _entry(store: Any, access: Access, namespace: str, key: str) -> Any:
    from airflow_integrity.store.ledger import IdempotencyLedger
    from airflow_integrity.store.ledger.entries import LedgerInputError

    try:
        with IdempotencyLedger(store, namespace=namespace) as ledger:
            entry = ledger.get(key)
            history = ledger.history(key) if entry is not None else []
    except LedgerInputError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    if entry is None or not access.may_read(key_dag(entry)):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"No idempotency key {key!r:.100} in namespace {namespace!r} that you may read.",
        )
    return entry, history


@router.get(
    "/ledger/namespaces/{namespace}/keys/{key:path}",
    response_model=LedgerKeyDetail,
    summary="One key and its history",
)
def get_key(access: AccessDep, namespace: Namespace, key: str) -> dict[str, Any]:
    """A key with its full history, oldest first: claims, takeovers, completions, failures, replays, refusals,
    releases (with person and reason)."""
    with open_store() as store:
        entry, history = _entry(store, access, namespace, key)
    return {**key_json(entry), "history": [item.as_dict() for item in history]}


@router.post("/ledger/release", response_model=ReleaseResponse, summary="Release a key (a person, with a reason)")
def release(access: AccessDep, body: ReleaseRequest) -> dict[str, Any]:
    """Re-open a completed or failed key (or one whose holder's lease expired) so that its work runs again.
    Needs the right to change the task instances of the key's DAG (store-wide edit for a key of no DAG).
    409 while a live holder works on it or when it is released already."""
    from airflow_integrity.hooks.events import build_event
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.store.ledger import IdempotencyLedger
    from airflow_integrity.store.ledger.entries import LedgerInputError, ReleaseRefusedError

    with open_store() as store:
        entry, _ = _entry(store, access, body.namespace, body.key)
        access.require_dag(key_dag(entry), "PUT", "TASK_INSTANCE")
        holder_dag = (entry.holder or {}).get("dag_id")
        if holder_dag not in (None, key_dag(entry)):
            access.require_dag(str(holder_dag), "PUT", "TASK_INSTANCE")
        hook = IntegrityCheckHook()
        details = {
            "namespace": body.namespace,
            "key": body.key,
            "reason": body.reason,
            "person": access.name,
            "via": "integrity API",
            "state_before": entry.state.value,
            "fencing_token": entry.fencing_token,
            "task_id": (entry.holder or {}).get("task_id"),
        }

        def audit(event_type: str, facts: dict[str, Any]) -> None:
            # Under the key's DAG, so that whoever may read the key reads what was done to it.
            event = build_event(event_type, business_key=body.key, details=facts, user=access.name)
            hook.record_event(replace(event, dag_id=key_dag(entry)), chain=True)

        try:
            with IdempotencyLedger(store, namespace=body.namespace) as ledger:
                done = ledger.release(body.key, reason=body.reason, person=access.name)
        except ReleaseRefusedError as exc:
            audit("idempotency.release_refused", {**details, "refusal": str(exc)})
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        except LedgerInputError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        audit("idempotency.released", details)
    return {
        "namespace": done.namespace,
        "key": done.key,
        "released_by": done.person,
        "reason": done.reason,
        "fencing_token": done.fencing_token,
        "previous_state": done.previous_state,
        "released_at": done.released_at.isoformat(),
    }
