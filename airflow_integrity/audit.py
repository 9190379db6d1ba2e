"""Record audit events from task code: ``airflow_integrity.audit.record("claim.approved", business_key=...)``.

The event carries the running task's identity (DAG, version, run, task, map index, try) and the actor
(``worker@host``). Details are redacted with Airflow's secrets masker; put data in them as
:func:`fingerprint` values, never the data itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_integrity.hooks.events import build_event, redact, redact_text
from airflow_integrity.store.audit.event import Recorded, tagged_sha256

__all__ = ["fingerprint", "record", "redact", "redact_text"]

#: ``"sha256:<hex>"`` of data, for details that prove which data a step saw without holding it.
fingerprint = tagged_sha256


def record(
    event_type: str,
    *,
    business_key: str | None = None,
    details: Mapping[str, Any] | None = None,
    conn_id: str | None = None,
) -> Recorded | None:
    """Record an event in the audit trail, attributed to the running task.

    The event is committed and on disk when this returns; it joins the hash chain within about a second.

    Args:
        event_type: What happened, for example ``claim.approved``.
        business_key: The business object it concerns, for example ``claim-42``.
        details: A JSON object of facts; data belongs here as :func:`fingerprint` values.
        conn_id: The integrity store connection; defaults to ``[integrity] conn_id``.

    Returns:
        The receipt (``event_id``, ``recorded_at``; ``seq`` and ``hash`` once chained), or ``None`` if the store
        was unreachable and the event was spooled.

    Raises:
        AuditUnavailableError: The store is unreachable and ``[integrity] audit_on_store_error = fail``.
    """
    from airflow_integrity.hooks.integrity import IntegrityCheckHook

    event = build_event(event_type, business_key=business_key, details=details)
    return IntegrityCheckHook(integrity_conn_id=conn_id).record_event(event)
