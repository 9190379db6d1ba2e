"""Start the scheduler's completeness sweep (:mod:`airflow_integrity.completeness.sweep`) when it starts.

Only a scheduler sweeps: every deployment has one, and it sees every run. A listener never raises into Airflow.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)
_sweeper: Any = None


def is_scheduler(component: Any, argv: list[str]) -> bool:
    """Whether this process is Airflow's scheduler (``on_starting`` is called before the job knows its type)."""
    return type(component).__module__ == "airflow.jobs.job" and argv[1:2] == ["scheduler"]


@hookimpl
def on_starting(component: Any) -> None:
    """In a scheduler, start sweeping every ``[integrity] completeness_interval`` seconds (0: never)."""
    global _sweeper
    try:
        from airflow_integrity.settings import load_settings

        settings = load_settings()
        if _sweeper is not None or not is_scheduler(component, sys.argv):
            return
        if not settings.audit_listeners or settings.completeness_interval <= 0:
            return
        from airflow_integrity.completeness.sweep import Sweeper

        _sweeper = Sweeper(settings.completeness_interval).start()
        log.info("airflow-integrity: completeness sweep every %s s", settings.completeness_interval)
    except Exception:
        log.exception("airflow-integrity: the completeness sweep was not started")
