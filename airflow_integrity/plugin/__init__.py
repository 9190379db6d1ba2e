"""The Airflow plugin: audit listeners, the integrity HTTP API and the UI entry."""

from __future__ import annotations

from typing import Any

from airflow.sdk.plugins_manager import AirflowPlugin

from airflow_integrity.listeners import dag_run_listener, task_instance_listener
from airflow_integrity.plugin.middleware import RequestUserMiddleware
from airflow_integrity.plugin.task_end_watch import TaskEndWatchMiddleware

URL_PREFIX = "/integrity"


class IntegrityPlugin(AirflowPlugin):
    """Registers the audit listeners, the ``/integrity`` FastAPI app and the "Integrity" navigation entry."""

    name = "integrity"
    listeners = [task_instance_listener, dag_run_listener]
    fastapi_root_middlewares = [
        {"middleware": RequestUserMiddleware, "args": [], "kwargs": {}, "name": "integrity-request-user"},
        {"middleware": TaskEndWatchMiddleware, "args": [], "kwargs": {}, "name": "integrity-task-end-watch"},
    ]
    external_views = [
        {
            "name": "Integrity",
            "href": f"{URL_PREFIX}/ui/",
            "destination": "nav",
            "url_route": "integrity",
            "category": "browse",
        }
    ]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """Built on first access so that worker processes, which never serve HTTP, never import FastAPI."""
        from airflow_integrity.plugin.api import create_app

        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "airflow-integrity"}]
