"""The Airflow plugin: audit listeners, the integrity HTTP API and the UI entry."""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk.plugins_manager import AirflowPlugin
else:
    try:
        from airflow.sdk.plugins_manager import AirflowPlugin
    except ImportError:  # Airflow 3.1
        from airflow.plugins_manager import AirflowPlugin

from airflow_integrity.listeners import (
    completeness_listener,
    dag_run_listener,
    preload,
    spool_drain,
    task_instance_listener,
)
from airflow_integrity.plugin import console
from airflow_integrity.plugin.approval_settle import ApprovalSettleMiddleware
from airflow_integrity.plugin.middleware import RequestUserMiddleware
from airflow_integrity.plugin.task_end_watch import TaskEndWatchMiddleware

URL_PREFIX = "/integrity"
# What DAG files import from the package: light modules (their heavy dependencies load when a task runs).
DAG_AUTHORING_MODULES = (
    "airflow_integrity.operators.compensation",
    "airflow_integrity.operators.error_budget",
    "airflow_integrity.operators.http",
    "airflow_integrity.operators.idempotent",
    "airflow_integrity.operators.validate",
    "airflow_integrity.sensors.idempotency",
    "airflow_integrity.sensors.validated_data",
    "airflow_integrity.decorators.idempotent",
    "airflow_integrity.decorators.validated",
)

log = logging.getLogger(__name__)


def preload_dag_authoring_modules() -> None:
    """Import the operator, sensor and decorator modules in the process that loads the plugins.

    Airflow's DAG processor loads plugins when it starts and forks a process for every parse of a DAG file;
    a module imported here is inherited by each of them, so a DAG file using these operators parses as fast
    as one using Airflow's own (the processor pre-imports only the ``airflow.*`` modules a file names).
    """
    for name in DAG_AUTHORING_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # a broken optional import must not keep Airflow from loading its plugins
            log.exception("airflow-integrity: %s could not be pre-imported", name)


preload_dag_authoring_modules()


class IntegrityPlugin(AirflowPlugin):
    """Registers the audit listeners, the ``/integrity`` FastAPI app and the Integrity console (a navigation page,
    a DAG-run tab and a task-instance tab)."""

    name = "integrity"
    listeners = [task_instance_listener, dag_run_listener, preload, spool_drain, completeness_listener]
    fastapi_root_middlewares = [
        {"middleware": RequestUserMiddleware, "args": [], "kwargs": {}, "name": "integrity-request-user"},
        {"middleware": TaskEndWatchMiddleware, "args": [], "kwargs": {}, "name": "integrity-task-end-watch"},
        {"middleware": ApprovalSettleMiddleware, "args": [], "kwargs": {}, "name": "integrity-approval-settle"},
    ]
    react_apps = console.react_apps(URL_PREFIX)

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """Built on first access so that worker processes, which never serve HTTP, never import FastAPI."""
        from airflow_integrity.plugin.api import create_app

        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "airflow-integrity"}]
