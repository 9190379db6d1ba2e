"""Audit events of Airflow's own objects: the running task's identity, the actor, details passed through
Airflow's secrets masker. Every component that records an event builds it here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_integrity.identity import actor, task_instance_identity
from airflow_integrity.store.audit.event import AuditEvent

__all__ = ["build_event", "redact", "redact_text"]


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
