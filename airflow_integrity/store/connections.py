"""Every connection to the store is opened here: SQLAlchemy engines (one per process and location), and the
plain driver connections the audit trail's hot path uses (psycopg in autocommit mode, sqlite3 without implicit
transactions), kept idle per process for reuse. One after-fork reset forgets both in a child process: they
belong to the parent.

SQLite runs in WAL mode with a durable commit and a busy timeout, and a transaction takes the write lock when it
begins (``BEGIN IMMEDIATE``), so that several worker processes write at once without "database is locked".
Read-only work opts out with the ``integrity_readonly`` execution option. The ledger lends one pooled connection
of the engine per ledger (:mod:`airflow_integrity.store.ledger.conn`).
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, create_engine
from sqlalchemy.pool import NullPool

from airflow_integrity.store.location import StoreLocation

if TYPE_CHECKING:
    from airflow_integrity.store.store import IntegrityStore

READONLY = "integrity_readonly"
T = TypeVar("T")

_engines: dict[tuple[str, int, float], Engine] = {}
_lock = threading.Lock()


def _sqlite_settings(cursor: Any, busy_timeout: float) -> None:
    """A wait for other writers, a durable commit, WAL: every SQLite connection to the store has them."""
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    cursor.execute("PRAGMA synchronous=FULL")
    _journal_in_wal(cursor, busy_timeout)


def _journal_in_wal(cursor: Any, busy_timeout: float) -> None:
    """Put the database in WAL mode unless it is. Switching needs a lock that SQLite does not wait for (it answers
    "database is locked" at once while another process opens or migrates the file), so the switch is retried,
    with a growing pause, for up to the busy timeout."""
    import sqlite3

    deadline = time.monotonic() + busy_timeout
    pause = 0.01
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


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
            _sqlite_settings(cursor, busy_timeout)
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


# Plain driver connections, for the audit trail's one-statement calls.
_idle: dict[tuple[str, int], list[Any]] = {}
_idle_lock = threading.Lock()
_MAX_IDLE = 4


def _connect(store: IntegrityStore) -> Any:
    if store.backend == "sqlite":
        import sqlite3

        try:
            conn = sqlite3.connect(
                store.location.url.database or "",
                timeout=store.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            _sqlite_settings(conn, store.busy_timeout)
        except sqlite3.OperationalError as exc:
            raise store._unavailable(exc) from exc
        return conn
    import psycopg

    conninfo = store.location.url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise store._unavailable(exc) from exc


def _reusable(conn: Any) -> bool:
    if hasattr(conn, "in_transaction"):  # sqlite3
        return not conn.in_transaction
    import psycopg

    return not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@contextmanager
def raw_connection(store: IntegrityStore) -> Iterator[Any]:
    """A connection to the store (psycopg in autocommit mode, or sqlite3 without implicit transactions),
    returned to this process's idle list afterwards if it is reusable."""
    key = (store.location.key, os.getpid())
    with _idle_lock:
        idle = _idle.setdefault(key, [])
        conn = idle.pop() if idle else None
    if conn is None:
        conn = _connect(store)
    try:
        yield conn
    finally:
        reusable = _reusable(conn)
        with _idle_lock:
            if reusable and len(idle) < _MAX_IDLE and os.getpid() == key[1]:
                idle.append(conn)
                conn = None
        if conn is not None:
            conn.close()


def connection_lost(exc: BaseException) -> bool:
    """Whether a driver error says the connection itself is gone (server restarted, socket closed)."""
    message = str(exc).lower()
    return any(m in message for m in ("server closed the connection", "connection", "terminat", "eof"))


def on_driver_connection(store: IntegrityStore, work: Callable[[Any], T]) -> T:
    """Run ``work`` on a reused driver connection (:func:`raw_connection`); again on a new one when the reused one
    turns out to be dead, after forgetting the other idle ones (a restarted server closed them all).

    Raises:
        StoreUnavailableError: The new connection was lost too.
        psycopg.Error: Any other driver error, as it is.
    """
    import psycopg

    try:
        with raw_connection(store) as conn:
            return work(conn)
    except psycopg.OperationalError as exc:
        if not connection_lost(exc):
            raise
    _forget_idle(store)
    try:
        with raw_connection(store) as conn:
            return work(conn)
    except psycopg.OperationalError as exc:
        if connection_lost(exc):
            raise store._unavailable(exc) from exc
        raise


def _forget_idle(store: IntegrityStore) -> None:
    with _idle_lock:
        connections = _idle.pop((store.location.key, os.getpid()), [])
    for conn in connections:
        conn.close()


# ``:name`` placeholders (not ``::type`` casts), and ``IN :name`` of a list parameter.
_PLACEHOLDER = re.compile(r"(?<![:\w]):(\w+)")
_IN_LIST = re.compile(r"\bIN :(\w+)")


@functools.lru_cache(maxsize=256)
def driver_sql(sql: str) -> str:
    """``sql`` written with SQLAlchemy's ``:name`` placeholders, for psycopg (``%(name)s``); a list parameter
    compared with ``IN :name`` becomes ``= ANY(%(name)s)``."""
    sql = sql.replace("%", "%%")
    sql = _IN_LIST.sub(r"= ANY(:\1)", sql)
    return _PLACEHOLDER.sub(r"%(\1)s", sql)


def close_connections() -> None:
    """Close this process's idle driver connections (tests and shutdown)."""
    with _idle_lock:
        connections = [conn for idle in _idle.values() for conn in idle]
        _idle.clear()
    for conn in connections:
        conn.close()


def _after_fork_in_child() -> None:
    # The parent's connections are not ours: pooled engine connections are dropped without closing the
    # parent's sockets, and psycopg does not close idle ones when collected in a child. A thread of the parent
    # (the chaining thread, for one) may have held a lock at the fork.
    global _idle_lock, _lock
    _lock = threading.Lock()
    for engine in list(_engines.values()):
        engine.dispose(close=False)
    _engines.clear()
    _idle_lock = threading.Lock()
    _idle.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def planned_for_values(connection: Connection) -> Iterator[None]:
    """Statements on ``connection`` are planned for their parameters' values each time (PostgreSQL).

    psycopg prepares a statement after its fifth run on a connection, and PostgreSQL may then settle on a generic
    plan, the same for every value: for a listing filtered by a rare value (an event type of 300 events in a
    million) that plan walked the whole chain (0.1 s) where the value's own plan reads its index (0.4 ms). Reads
    of the store are not prepared; writes keep psycopg's default.
    """
    driver: Any = connection.connection.driver_connection
    if not hasattr(driver, "prepare_threshold"):  # sqlite3
        yield
        return
    threshold = driver.prepare_threshold
    driver.prepare_threshold = None
    try:
        yield
    finally:
        driver.prepare_threshold = threshold
