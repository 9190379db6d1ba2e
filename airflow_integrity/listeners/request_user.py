"""The person behind the API request being served, so that listeners can attribute manual changes.

The plugin's root middleware sets it for every state-changing request to Airflow's API server; listener
code running for that request (in the same task or a thread pool worker with a copied context) reads it.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

_request: ContextVar[tuple[str | None, str | None]] = ContextVar("integrity_request", default=(None, None))


def current_user() -> str | None:
    """The authenticated user of the API request being served, or ``None`` outside one."""
    return _request.get()[0]


def current_request() -> str | None:
    """The API request being served, as ``METHOD path`` (for example ``PATCH /api/v2/dags/…``)."""
    return _request.get()[1]


def set_current_user(user: str | None, request: str | None = None) -> Token[tuple[str | None, str | None]]:
    """Set the request's user and the request itself; return the token that restores the previous values."""
    return _request.set((user, request))


def reset_current_user(token: Token[tuple[str | None, str | None]]) -> None:
    """Restore the values before :func:`set_current_user`."""
    _request.reset(token)
