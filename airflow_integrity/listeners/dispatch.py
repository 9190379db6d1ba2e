"""Run listener work outside the caller's database session.

The scheduler and the API server call listeners inside their own metadata-database transaction.
Resolving the store's connection from the metastore there would commit that transaction (Airflow
forbids it: it breaks the scheduler's HA locks). SQLAlchemy's scoped session is thread-local, so the
work runs on a dedicated thread and the caller waits for it: the event is still durable before the
listener returns. Task runners (workers) have no such session and call directly.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from airflow_integrity.identity import in_task_runner

T = TypeVar("T")
log = logging.getLogger(__name__)
_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="integrity-audit")
        return _executor


def listening() -> bool:
    """Whether the listeners record states (``[integrity] audit_listeners``, on unless switched off)."""
    from airflow_integrity.settings import load_settings

    try:
        return load_settings().audit_listeners
    except Exception:
        return True


def run_isolated(work: Callable[[], T], timeout: float = 120.0) -> T:
    """Run ``work`` where it cannot touch the caller's metadata session, and return its result."""
    if in_task_runner():
        return work()
    return _pool().submit(work).result(timeout=timeout)


def submit_isolated(work: Callable[[], object]) -> None:
    """Start ``work`` on the listener thread and return at once (for work nobody waits for)."""
    _pool().submit(work)


def lost(what: str, event: object, exc: BaseException) -> None:
    """Say, as loudly as a listener can, that an event of a step that already happened could not be kept
    anywhere (neither the store nor the spool took it): the whole event goes to the log, so it is not lost."""
    body = None
    if event is not None:
        from dataclasses import asdict

        try:
            body = json.dumps(asdict(event), sort_keys=True, default=str)  # type: ignore[call-overload]
        except Exception:
            body = repr(event)
    log.critical(
        "Audit event for %s was neither recorded nor spooled (%s: %s); the event: %s",
        what,
        type(exc).__name__,
        exc,
        body,
    )
