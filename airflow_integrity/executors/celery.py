"""Celery workers that start validating tasks as fast as the LocalExecutor does: GX loaded once per worker.

A Celery worker forks its pool processes from its main process, and each pool process forks the process of every
task it runs (Airflow 3's supervisor), so whatever the main process imports before its pool starts is already
loaded in every task process. Point Airflow's Celery configuration here::

    [celery]
    celery_config_options = airflow_integrity.executors.celery.CELERY_CONFIG

(``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS``; ``docker-compose.yaml`` sets it). :data:`CELERY_CONFIG` is the Celery
provider's own configuration, unchanged; importing it connects :func:`load_task_modules` to Celery's
``import_modules`` signal, which only a worker sends, in its main process, before its pool starts. The worker
then loads the package's task-time modules and, with ``[integrity] preload_validation`` (default on), Great
Expectations and the validation modules (~4 s once per worker and ~160 MB shared copy-on-write, instead of ~4 s
in every task that validates data). The scheduler, which imports the same configuration to send tasks, loads
nothing.

On Kubernetes (the KubernetesExecutor, or KubernetesPodOperator) every task is a new pod whose process starts
from nothing: there is no parent to load modules into. There, keep validating tasks few and large (one
validation of a whole hand-off rather than many small ones), or run them on a Celery queue.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import import_modules

from airflow_integrity.listeners.preload import TASK_MODULES, VALIDATION_MODULES, preload

log = logging.getLogger(__name__)

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)
"""The Celery provider's configuration; importing this module is what makes workers preload (see above)."""


@import_modules.connect
def load_task_modules(*args: Any, **kwargs: Any) -> None:
    """In a Celery worker's main process, before its pool forks: load what tasks import (never raises)."""
    try:
        from airflow_integrity.settings import load_settings

        seconds = preload(TASK_MODULES)
        if load_settings().preload_validation:
            log.info(
                "airflow-integrity: task modules loaded in %.2f s and Great Expectations in %.1f s for the task "
                "processes this Celery worker forks ([integrity] preload_validation)",
                seconds,
                preload(VALIDATION_MODULES),
            )
        else:
            log.info("airflow-integrity: task modules loaded in %.2f s for this Celery worker's tasks", seconds)
    except Exception:
        log.exception("airflow-integrity: task modules not preloaded; each task process imports them itself")
