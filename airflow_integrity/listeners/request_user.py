"""The person behind the API request being served, so that listeners can attribute manual changes.

The plugin's root middleware sets it for every state-changing request to Airflow's API server; listener
code running for that request (in the same task or a thread pool worker with a copied context) reads it.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

_request_user: ContextVar[str | None] = ContextVar("integrity_request_user", default=None)


def current_user() -> str | None:
    """The authenticated user of the API request being served, or ``None`` outside one."""
    return _request_user.get()


def set_current_user(user: str | None) -> Token[str | None]:
    """Set the request's user; return the token that restores the previous value."""
    return _request_user.set(user)


def reset_current_user(token: Token[str | None]) -> None:
    """Restore the value before :func:`set_current_user`."""
    _request_user.reset(token)
