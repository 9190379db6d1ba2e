"""Replay the audit spool when an Airflow component starts, so that no spooled event waits for the next one.

Events spooled while the store was unreachable are otherwise replayed only when the same host records another
event; a host that stops recording (a worker pod that is replaced, a component restarted after an outage)
would leave them behind. Every component that loads the plugin replays the spool in the background as it starts
(``airflow integrity audit drain`` does it on demand). A listener never raises into Airflow.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

from airflow_integrity.listeners.dispatch import submit_isolated

log = logging.getLogger(__name__)


def _drain() -> None:
    from airflow_integrity.hooks.integrity import IntegrityCheckHook

    try:
        report = IntegrityCheckHook().drain_spool()
    except Exception:
        log.exception("airflow-integrity: the audit spool could not be replayed at start; it is kept")
        return
    log.info("airflow-integrity: audit spool replayed at start: %s", report.summary())


@hookimpl
def on_starting(component: Any) -> None:
    """Replay the spool in the background if it holds events (one ``stat`` when it does not)."""
    try:
        from airflow_integrity.settings import load_settings
        from airflow_integrity.store.audit.spool import AuditSpool

        if AuditSpool(load_settings().spool_dir).has_lines():
            submit_isolated(_drain)
    except Exception:
        log.exception("airflow-integrity: the audit spool was not looked at")
