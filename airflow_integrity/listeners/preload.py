"""Load what tasks import once in the scheduler when the LocalExecutor forks every task process from it.

The LocalExecutor's workers are forked from the scheduler and fork a process for every task, so every module
the scheduler has imported before its workers start is already loaded in each task process. The scheduler
imports the package's task-time modules when its job starts (:data:`TASK_MODULES`: the hook, the store, the
audit and ledger code the listeners and operators run; ~0.1 s once instead of ~0.08 s in every task process)
and, with ``[integrity] preload_validation`` (default on), Great Expectations and the validation modules
(:data:`VALIDATION_MODULES`; ~4 s once and ~160 MB of memory the forked processes share copy-on-write,
instead of ~4 s in every task that validates data). Other components never fork tasks: nothing is loaded there.
Celery workers load the same modules through the package's Celery configuration
(:mod:`airflow_integrity.executors.celery`).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import sys
import time
from collections.abc import Sequence
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

TASK_MODULES = (
    "airflow_integrity.hooks.integrity",
    "airflow_integrity.audit",
    "airflow_integrity.listeners.approvals",
    "airflow_integrity.hooks.idempotency",
    "airflow_integrity.hooks.compensation",
    "airflow_integrity.triggers.idempotency",
    "airflow_integrity.hooks.data_sources",
)
"""What the listeners and the operators import when a task runs (no GX, no pandas)."""

VALIDATION_MODULES = (
    "great_expectations",
    "airflow_integrity.validation.gx_runtime",
    "airflow_integrity.validation.run",
    "airflow_integrity.validation.summary",
    "airflow_integrity.validation.fingerprint",
    "airflow_integrity.hooks.validation",
)
"""What a validating task imports first; the scheduler loads them before its workers fork."""


def forks_task_processes(component: Any, argv: Sequence[str], executors: str, start_method: str | None) -> bool:
    """Whether this process is a scheduler whose LocalExecutor forks the task processes.

    Args:
        component: What ``on_starting`` was called for (a ``Job`` in Airflow's components).
        argv: The process's command line (``airflow scheduler ...`` or ``python -m airflow scheduler ...``).
        executors: ``[core] executor``: executor names or class paths, comma-separated, optionally
            ``team:``-prefixed.
        start_method: The ``multiprocessing`` start method (``None``: the platform default).
    """
    if type(component).__module__ != "airflow.jobs.job":  # e.g. the task runner's own marker
        return False
    if len(argv) < 2 or argv[1] != "scheduler":
        return False
    names = [entry.strip().rsplit(":", 1)[-1].rsplit(".", 1)[-1] for entry in executors.split(",")]
    if "LocalExecutor" not in names:
        return False
    return (start_method or multiprocessing.get_all_start_methods()[0]) == "fork"


def preload(modules: Sequence[str]) -> float:
    """Import ``modules``; return the seconds it took."""
    started = time.monotonic()
    for name in modules:
        importlib.import_module(name)
    return time.monotonic() - started


@hookimpl
def on_starting(component: Any) -> None:
    """In a LocalExecutor scheduler, load the task modules before the workers fork (never raises into Airflow)."""
    try:
        from airflow_integrity.compat import conf
        from airflow_integrity.settings import load_settings

        executors = conf.get("core", "executor", fallback="") or ""
        start_method = multiprocessing.get_start_method(allow_none=True)
        if not forks_task_processes(component, sys.argv, executors, start_method):
            return
        seconds = preload(TASK_MODULES)
        if load_settings().preload_validation:
            gx_seconds = preload(VALIDATION_MODULES)
            log.info(
                "airflow-integrity: task modules loaded in %.2f s and Great Expectations in %.1f s for the task "
                "processes the LocalExecutor forks ([integrity] preload_validation)",
                seconds,
                gx_seconds,
            )
        else:
            log.info("airflow-integrity: task modules loaded in %.2f s for the forked task processes", seconds)
    except Exception:
        log.exception("airflow-integrity: task modules not preloaded; each task process imports them itself")
