"""DAG-run state changes become audit events (scheduler, and API server for manual changes)."""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.listeners import hookimpl

from airflow_integrity.listeners.dispatch import listening, lost, run_isolated, submit_isolated
from airflow_integrity.listeners.request_user import current_request, current_user

log = logging.getLogger(__name__)
# A process looks whether a periodic checkpoint is due at most this often (the store decides if it is).
_CHECK_EVERY = 30.0
_last_check: float | None = None


def _sign_checkpoint() -> None:
    from airflow_integrity.hooks.audit_checkpoints import checkpoint_if_due
    from airflow_integrity.hooks.integrity import IntegrityCheckHook

    try:
        checkpoint_if_due(IntegrityCheckHook().get_store())
    except Exception:
        log.exception("Periodic audit checkpoint not signed")


def _checkpoint_if_due() -> None:
    """When a run ends, sign a checkpoint in the background if one is due (``[integrity] checkpoint_*``)."""
    global _last_check
    from airflow_integrity.settings import load_settings

    try:
        if not load_settings().checkpoint_key_conn_id:
            return
    except Exception:
        log.exception("Periodic audit checkpoints not configured")
        return
    now = time.monotonic()
    if _last_check is not None and now - _last_check < _CHECK_EVERY:
        return
    _last_check = now
    submit_isolated(_sign_checkpoint)


def _settle(dag_run: Any) -> None:
    """Before a run's final event: record the states of its tasks that no listener recorded."""
    from airflow_integrity.completeness.sweep import AT_RUN_END, record_missing, run_at_its_end

    try:
        started = time.perf_counter()
        runs = run_at_its_end(dag_run)
        recorded = run_isolated(
            lambda: record_missing(runs, recorded_by=AT_RUN_END, include_final_run_state=False)
        )
        log.info(
            "airflow-integrity: %s / %s compared with the trail at its end in %.0f ms, %d state event(s) recorded",
            dag_run.dag_id,
            dag_run.run_id,
            (time.perf_counter() - started) * 1000,
            recorded,
        )
    except Exception:
        log.exception("airflow-integrity: the states of %s not yet in the trail were not recorded", dag_run)


def _record(event_type: str, dag_run: Any, msg: str | None, *, chain: bool = False) -> None:
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.identity import actor
    from airflow_integrity.store.audit.event import AuditEvent

    if not listening():
        return
    event = None
    try:
        state = getattr(dag_run, "state", None)
        run_type = getattr(dag_run, "run_type", None)
        dag_version = getattr(dag_run, "created_dag_version_id", None)
        details: dict[str, Any] = {
            "state": None if state is None else str(getattr(state, "value", state)),
            "run_type": None if run_type is None else str(getattr(run_type, "value", run_type)),
            "message": (msg or None) and str(msg)[:2000],
        }
        if current_user() is not None:
            details["cause"] = {"kind": "person", "by": current_user(), "request": current_request()}
        event = AuditEvent(
            event_type=event_type,
            actor=actor(current_user()),
            dag_id=getattr(dag_run, "dag_id", None),
            run_id=getattr(dag_run, "run_id", None),
            bundle_version=getattr(dag_run, "bundle_version", None),
            dag_version=str(dag_version) if dag_version is not None else None,
            details=details,
        )
        # The run's state has already changed: when the store cannot take the event, it is spooled.
        run_isolated(lambda: IntegrityCheckHook().record_event(event, chain=chain, keep=True))
    except Exception as exc:
        lost(event_type, event, exc)


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    """A DAG run started."""
    _record("dag_run.running", dag_run, msg)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    """A DAG run succeeded, or was marked success: the run's events are all chained when this returns."""
    if listening():
        _settle(dag_run)
    _record("dag_run.success", dag_run, msg, chain=True)
    _checkpoint_if_due()


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    """A DAG run failed, or was marked failed: the run's events are all chained when this returns."""
    if listening():
        _settle(dag_run)
    _record("dag_run.failed", dag_run, msg, chain=True)
    _checkpoint_if_due()
