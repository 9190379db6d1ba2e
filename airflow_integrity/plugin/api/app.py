"""The plugin's HTTP app, served by Airflow's API server under ``/integrity``: the integrity API under
``/api/v1``, its description and documentation pages, and the console's bundle.

Every route needs an authenticated Airflow user, the API description and its documentation pages included:
FastAPI's own ``/openapi.json``, ``/docs`` and ``/redoc`` (served to anyone) are turned off and served here
behind the same dependency as the API. What each route lets a user see or change is decided by Airflow's
auth manager (:mod:`airflow_integrity.plugin.api.access`).
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.plugin import console
from airflow_integrity.store import StoreError


def _store_status() -> dict[str, Any]:
    try:
        return IntegrityCheckHook().get_store(ensure_schema=False).describe().as_dict()
    except StoreError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc


def _description_url(request: Request) -> str:
    # Airflow mounts the app under a prefix (``/integrity``), which the page must name.
    return f"{request.scope.get('root_path', '').rstrip('/')}/openapi.json"


API_PREFIX = "/api/v1"
DESCRIPTION = """The audit trail, validations and idempotency ledger of airflow-integrity, and idempotent
triggering of DAG runs. Authenticate as for Airflow's own API (`Authorization: Bearer <JWT from POST /auth/token>`,
or the UI's session cookie). A user sees the events, validations and keys of the DAGs Airflow lets them read;
data of no DAG needs the configuration read permission, verifying the chain the configuration edit permission."""


def create_app() -> FastAPI:
    """Build the plugin's FastAPI app; every route requires an authenticated Airflow user."""
    from airflow_integrity.plugin.api import error_budgets, events, ledger, trigger, validations, verification
    from airflow_integrity.plugin.api.access import refuse_cross_site

    # FastAPI would serve the description and the docs pages without authentication; they are routes below.
    app = FastAPI(
        title="airflow-integrity",
        version="1",
        description=DESCRIPTION,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(refuse_cross_site)],
    )
    for module in (events, verification, validations, ledger, trigger, error_budgets):
        app.include_router(module.router, prefix=API_PREFIX)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(user: GetUserDep) -> dict[str, Any]:
        """The OpenAPI description of this API."""
        return app.openapi()

    @app.get("/docs", include_in_schema=False)
    def docs(user: GetUserDep, request: Request) -> HTMLResponse:
        """Swagger UI for this API (the browser fetches the description with the user's session cookie)."""
        return get_swagger_ui_html(openapi_url=_description_url(request), title="airflow-integrity API")

    @app.get("/redoc", include_in_schema=False)
    def redoc(user: GetUserDep, request: Request) -> HTMLResponse:
        """ReDoc for this API."""
        return get_redoc_html(openapi_url=_description_url(request), title="airflow-integrity API")

    @app.get("/api/v1/health")
    def health(user: GetUserDep) -> dict[str, Any]:
        """Whether the integrity store is reachable, and its schema revision."""
        return {"status": "ok", "store": _store_status()}

    @app.get("/static/{name}", include_in_schema=False)
    def static(user: GetUserDep, name: str, v: str | None = None) -> FileResponse:
        """The console's bundle and icons (see :mod:`airflow_integrity.plugin.console`)."""
        if name not in console.SERVED:
            raise HTTPException(status_code=404, detail=f"No file {name!r} here.")
        path = console.STATIC / name
        if not path.is_file():
            raise HTTPException(status_code=404, detail=f"{name} is not in this installation: rebuild it (ui/).")
        # An address naming this content (console.react_apps) may be kept for good; any other (an older
        # server behind the same name during an upgrade, a hand-typed one) must not be cached.
        current = v == console.bundle_digest()
        cache = "private, max-age=31536000, immutable" if current else "no-store"
        return FileResponse(path, media_type=console.SERVED[name], headers={"Cache-Control": cache})

    return app
