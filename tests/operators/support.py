"""Helpers of the exactly-once tests: read the audit trail of an idempotency key."""

from __future__ import annotations

from typing import Any

from airflow_integrity.store import IntegrityStore, StoreLocation


def idempotency_events(url: str, business_key: str) -> list[dict[str, Any]]:
    """The ``idempotency.*`` audit events recorded for ``business_key``, in chain order."""
    from airflow_integrity.store.audit.chain import AuditLog
    from airflow_integrity.store.audit.export import iter_records

    store = IntegrityStore(StoreLocation.from_url(url))
    try:
        AuditLog(store).chain_pending()  # as an export does: events recorded in the last second too
        return [
            {
                "event": record.event_type.removeprefix("idempotency."),
                "run_id": record.run_id,
                "task_id": record.task_id,
                "try_number": record.try_number,
                "actor": record.actor,
                "details": record.details,
            }
            for _, record in iter_records(store, business_key=business_key, with_runs=False)
            if not isinstance(record, str) and record.event_type.startswith("idempotency.")
        ]
    finally:
        store.engine.dispose()
