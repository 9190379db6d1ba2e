"""Record audit events from task code: ``airflow_integrity.audit.record("claim.approved", business_key=...)``.

The event carries the running task's identity (DAG, version, run, task, map index, try) and the actor
(``worker@host``). Details are redacted with Airflow's secrets masker; put data in them as
:func:`fingerprint` values, never the data itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_integrity.identity import actor, task_instance_identity
from airflow_integrity.store.audit import AuditEvent, Recorded, fingerprint

__all__ = ["fingerprint", "record", "redact", "redact_text"]


def _masker() -> Any:
    try:
        from airflow.sdk._shared.secrets_masker import redact as _redact
    except ImportError:  # pragma: no cover - core-only installations
        from airflow._shared.secrets_masker import redact as _redact
    return _redact


def redact(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Mask anything Airflow's secrets masker would mask (passwords, tokens, registered secrets)."""
    if not details:
        return {}
    redacted: Any = _masker()(dict(details))
    return dict(redacted)


def redact_text(text: str) -> str:
    """``text`` with every secret Airflow's secrets masker knows (connection passwords, registered secrets)
    replaced by ``***``: for error messages kept where they can never be scrubbed later."""
    return str(_masker()(text))


def _current_task_instance() -> Any:
    try:
        from airflow.sdk import get_current_context

        return get_current_context()["ti"]
    except Exception:
        return None


def build_event(
    event_type: str,
    *,
    task_instance: Any = None,
    business_key: str | None = None,
    details: Mapping[str, Any] | None = None,
    user: str | None = None,
) -> AuditEvent:
    """Build an event for ``task_instance`` (or the current task, if any), with redacted details."""
    ti = task_instance if task_instance is not None else _current_task_instance()
    identity = task_instance_identity(ti) if ti is not None else {}
    return AuditEvent(
        event_type=event_type,
        actor=actor(user),
        business_key=business_key,
        details=redact(details),
        **identity,
    )


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
