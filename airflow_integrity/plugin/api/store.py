"""The integrity store as the API reaches it: through the hook, with an unreachable store answered by 503."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fastapi import HTTPException, status

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.store import StoreError

if TYPE_CHECKING:
    from airflow_integrity.store import IntegrityStore


@contextmanager
def open_store() -> Iterator[IntegrityStore]:
    """The configured store; a store error raised inside becomes 503 naming the store and the fix."""
    try:
        yield IntegrityCheckHook().get_store(ensure_schema=False)
    except StoreError as exc:
        if isinstance(exc, ValueError):  # bad input the store refused: the caller's mistake
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


def bad_cursor(cursor: str) -> HTTPException:
    """400 for a cursor this API did not give."""
    return HTTPException(status.HTTP_400_BAD_REQUEST, f"cursor {cursor!r:.60} is not a cursor this API gave.")
