"""HTTP API and minimal UI of the plugin, served by Airflow's API server under ``/integrity``."""

from __future__ import annotations

import html
from typing import Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.store import StoreError


def _store_status() -> dict[str, Any]:
    try:
        return IntegrityCheckHook().get_store(ensure_schema=False).describe().as_dict()
    except StoreError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc


def create_app() -> FastAPI:
    """Build the plugin's FastAPI app; every route requires an authenticated Airflow user."""
    app = FastAPI(title="airflow-integrity", version="1")

    @app.get("/api/v1/health")
    def health(user: GetUserDep) -> dict[str, Any]:
        """Whether the integrity store is reachable, and its schema revision."""
        return {"status": "ok", "store": _store_status()}

    @app.get("/ui/", response_class=HTMLResponse)
    def ui(user: GetUserDep) -> str:
        """A plain page a reviewer can read: store location and schema state."""
        try:
            status = _store_status()
            rows = "".join(
                f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"
                for key, value in status.items()
            )
            body = f"<table>{rows}</table>"
        except HTTPException as exc:
            body = f"<p class='error'>{html.escape(str(exc.detail))}</p>"
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Integrity</title></head>"
            f"<body><h1>Integrity store</h1>{body}</body></html>"
        )

    return app
