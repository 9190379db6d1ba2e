"""The Airflow plugin: the integrity HTTP API and UI entry (listeners join it with the audit trail)."""

from __future__ import annotations

from typing import Any

from airflow.sdk.plugins_manager import AirflowPlugin

URL_PREFIX = "/integrity"


class IntegrityPlugin(AirflowPlugin):
    """Registers the ``/integrity`` FastAPI app and the "Integrity" navigation entry."""

    name = "integrity"
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
