"""Task-instance state changes become audit events, from whichever component sees them.

Workers report running / success / failed / up-for-retry / skipped; the scheduler reports tasks it fails
itself (lost heartbeat, killed worker); the API server reports manual state changes, with the user.
A listener never raises into Airflow. Under ``audit_on_store_error = fail`` a task whose ``running``
event cannot be recorded is stopped before its code runs: it fails naming the store.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

from airflow_integrity.listeners.dispatch import run_isolated
from airflow_integrity.listeners.request_user import current_user

log = logging.getLogger(__name__)


def _state(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _refuse_to_run(task_instance: Any, reason: str) -> None:
    task = getattr(task_instance, "task", None)
    if task is None:
        return

    def refuse(context: Any) -> None:
        from airflow.sdk.exceptions import AirflowException

        raise AirflowException(reason)

    task._pre_execute_hook = refuse


def _record(event_type: str, task_instance: Any, previous_state: Any, extra: dict[str, Any] | None = None) -> None:
    from airflow_integrity.audit import build_event
    from airflow_integrity.hooks.integrity import AuditUnavailableError, IntegrityCheckHook

    manual = previous_state is None and current_user() is not None
    details = {
        "previous_state": _state(previous_state),
        "state": _state(getattr(task_instance, "state", None)),
        "hostname": getattr(task_instance, "hostname", None),
        **(extra or {}),
    }
    if manual:
        details["manual"] = True
    user = current_user()
    try:
        event = build_event(event_type, task_instance=task_instance, details=details, user=user)
        run_isolated(lambda: IntegrityCheckHook().record_event(event))
    except AuditUnavailableError as exc:
        log.error("Audit event %s not recorded: %s", event_type, exc)
        if event_type == "task_instance.running":
            _refuse_to_run(task_instance, str(exc))
    except Exception:
        log.exception("Audit event %s not recorded", event_type)


def _record_approval(task_instance: Any) -> None:
    """A human-in-the-loop task that got its response: record the signature before the state change."""
    from airflow_integrity.audit import build_event
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.listeners.approvals import approval_event

    try:
        found = approval_event(getattr(task_instance, "task", None))
        if found is None:
            return
        event_type, signer, details = found
        event = build_event(event_type, task_instance=task_instance, details=details, user=signer)
        run_isolated(lambda: IntegrityCheckHook().record_event(event))
    except Exception:
        log.exception("Audit of the human-in-the-loop response of %s not recorded", task_instance)


@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    """A task instance started running (worker)."""
    _record("task_instance.running", task_instance, previous_state)


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    """A task instance succeeded, or was marked success."""
    _record_approval(task_instance)
    _record("task_instance.success", task_instance, previous_state)


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    """A task instance failed, will be retried, or was marked failed."""
    state = _state(getattr(task_instance, "state", None))
    event_type = "task_instance.up_for_retry" if state == "up_for_retry" else "task_instance.failed"
    message = None if error is None else f"{type(error).__name__}: {error}"[:2000]
    _record_approval(task_instance)
    _record(event_type, task_instance, previous_state, {"error": message})


@hookimpl
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    """A task instance skipped itself, or was marked skipped."""
    _record("task_instance.skipped", task_instance, previous_state)
