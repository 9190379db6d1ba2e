"""Task-instance state changes become audit events, from whichever component sees them.

Workers report running / success / failed / up-for-retry / skipped; the scheduler reports tasks it fails
itself (lost heartbeat, killed worker); the API server reports manual state changes, with the user.
A listener never raises into Airflow. A task whose ``running`` event cannot be recorded, for whatever reason
(the store unreachable or misconfigured, its schema not current, a refused statement), is stopped before its
code runs and fails naming the cause (under ``audit_on_store_error = spool`` an unreachable store spools the
event instead). The event of a state that has already happened is never dropped: when the store cannot take
it, it is spooled whatever the policy, and if even that fails it is logged whole at CRITICAL.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

from airflow_integrity.listeners.dispatch import listening, lost, run_isolated
from airflow_integrity.listeners.request_user import current_request, current_user

log = logging.getLogger(__name__)


def _state(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _refuse_to_run(task_instance: Any, reason: str) -> None:
    task = getattr(task_instance, "task", None)
    if task is None:
        return

    def refuse(context: Any) -> None:
        from airflow_integrity.compat import AirflowException

        raise AirflowException(reason)

    task._pre_execute_hook = refuse


def _record(event_type: str, task_instance: Any, previous_state: Any, extra: dict[str, Any] | None = None) -> None:
    from airflow_integrity.hooks.events import build_event
    from airflow_integrity.hooks.integrity import IntegrityCheckHook

    if not listening():
        return

    manual = previous_state is None and current_user() is not None
    details = {
        "previous_state": _state(previous_state),
        "state": _state(getattr(task_instance, "state", None)),
        "hostname": getattr(task_instance, "hostname", None),
        **(extra or {}),
    }
    if manual:
        details["manual"] = True
        details["cause"] = {"kind": "person", "by": current_user(), "request": current_request()}
    starting = event_type == "task_instance.running"
    event = None
    try:
        event = build_event(event_type, task_instance=task_instance, details=details, user=current_user())
        # A task's start must be on record before its code runs; every other state has already happened,
        # so its event is kept (spooled) whatever the policy when the store cannot take it.
        run_isolated(lambda: IntegrityCheckHook().record_event(event, keep=not starting))
    except Exception as exc:
        if starting:
            log.error("Audit event %s not recorded; the task is refused: %s", event_type, exc)
            _refuse_to_run(
                task_instance,
                f"The start of this task could not be recorded in the audit trail, so it does not run unaudited: "
                f"{type(exc).__name__}: {exc}",
            )
        else:
            lost(event_type, event, exc)


def _record_approval(task_instance: Any) -> None:
    """A human-in-the-loop task that got its response: record the signature before the state change."""
    from airflow_integrity.hooks.events import build_event
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.listeners.approvals import approval_event

    if not listening():
        return
    event = None
    try:
        found = approval_event(getattr(task_instance, "task", None))
        if found is None:
            return
        event_type, signer, details = found
        event = build_event(event_type, task_instance=task_instance, details=details, user=signer)
        run_isolated(lambda: IntegrityCheckHook().record_event(event, keep=True))
    except Exception as exc:
        lost("the human-in-the-loop response", event, exc)


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
