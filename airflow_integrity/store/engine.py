"""SQLAlchemy engines for the store, one per process and location.

SQLite runs in WAL mode with a busy timeout and takes the write lock when a transaction begins
(``BEGIN IMMEDIATE``), so that several worker processes write at once without "database is locked".
Read-only work opts out with the ``integrity_readonly`` execution option.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, create_engine
from sqlalchemy.pool import NullPool

from airflow_integrity.store.location import StoreLocation

READONLY = "integrity_readonly"

_engines: dict[tuple[str, int, float], Engine] = {}
_lock = threading.Lock()


def _sqlite_engine(location: StoreLocation, busy_timeout: float) -> Engine:
    path = location.url.database or ""
    if path and path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    engine = create_engine(
        location.url,
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
        poolclass=NullPool,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Transactions are begun explicitly below; the driver must not begin its own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        readonly = conn.get_execution_options().get(READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(location: StoreLocation) -> Engine:
    return create_engine(
        location.url,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=8,
        pool_recycle=1800,
        connect_args={"connect_timeout": 10},
    )


def get_engine(location: StoreLocation, *, busy_timeout: float = 60.0) -> Engine:
    """Return this process's engine for ``location``, creating it on first use.

    Engines are never shared across a fork: a child process gets its own.
    """
    key = (location.key, os.getpid(), busy_timeout)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            if location.backend == "sqlite":
                engine = _sqlite_engine(location, busy_timeout)
            else:
                engine = _postgres_engine(location)
            _engines[key] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection of this process (tests and CLI shutdown)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _after_fork_in_child() -> None:
    # Pooled connections belong to the parent; drop them without closing the parent's sockets.
    for engine in list(_engines.values()):
        engine.dispose(close=False)
    _engines.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
