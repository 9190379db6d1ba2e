"""Root ASGI middleware: remember who makes each state-changing API request, for the audit trail, and which
application serves it (so that the plugin's routes can call Airflow's own API in the same process)."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from http.cookies import SimpleCookie
from typing import Any

from airflow_integrity.listeners.request_user import reset_current_user, set_current_user

log = logging.getLogger(__name__)
_READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})
_root_app: ContextVar[Any] = ContextVar("integrity_root_app", default=None)


def current_root_app() -> Any:
    """The ASGI application of Airflow's API server serving the current request (``None`` outside one)."""
    return _root_app.get()


def request_token(scope: dict[str, Any]) -> str | None:
    headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    if "cookie" in headers:
        from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

        morsel = SimpleCookie(headers["cookie"]).get(COOKIE_NAME_JWT_TOKEN)
        return morsel.value if morsel else None
    return None


async def _user_name(token: str) -> str | None:
    try:
        from airflow.api_fastapi.app import get_auth_manager

        user = await get_auth_manager().get_user_from_token(token)
        return user.get_name()
    except Exception:
        # Authentication is enforced by Airflow's own routes; an invalid token only means "no user".
        return None


class RequestUserMiddleware:
    """Sets :func:`~airflow_integrity.listeners.request_user.current_user` for mutating requests."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") in _READ_ONLY:
            await self.app(scope, receive, send)
            return
        # Starlette names the application being called in the scope; at the root that is Airflow's own.
        app_marker = _root_app.set(scope.get("app"))
        token = request_token(scope)
        user = await _user_name(token) if token else None
        marker = set_current_user(user, f"{scope.get('method')} {scope.get('path')}")
        try:
            await self.app(scope, receive, send)
        finally:
            reset_current_user(marker)
            _root_app.reset(app_marker)
