"""Connections for the idempotency ledger: one driver connection kept per ledger for its short statements.

A claim and a completion are one statement each, so what surrounds a statement matters: opening a
pooled connection costs a pre-ping round trip on PostgreSQL, and on SQLite closing the last connection
of a WAL database checkpoints it. The ledger therefore keeps one DBAPI connection and lends it to one
caller at a time (a caller that finds it lent, in another thread, gets a pooled one), and runs its own
SQL on it in the driver's parameter style. The kept connection is a convenience only: correctness
rests on the statements, never on this process.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy.exc

from airflow_integrity.store.ledger.entries import LedgerError
from airflow_integrity.store.store import IntegrityStore

# A kept connection idle for longer goes back to the pool, whose pre-ping checks it before reuse.
_IDLE_SECONDS = 30.0
# Connections inherited through fork() belong to the parent: never used nor closed in the child.
_inherited: list[Any] = []


class LedgerCursor:
    """Run statements on one DBAPI connection.

    Args:
        connection: A DBAPI connection (psycopg or sqlite3).
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def one(self, sql: str, params: dict[str, Any]) -> Sequence[Any] | None:
        """Execute ``sql``, which returns rows; return its first row, or ``None``."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchone()
        finally:
            cursor.close()

    def run(self, sql: str, params: dict[str, Any] | None = None) -> None:
        """Execute ``sql``, which returns no rows."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params or {})
        finally:
            cursor.close()

    def all(self, sql: str, params: dict[str, Any]) -> list[Sequence[Any]]:
        """Execute ``sql``; return every row."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.close()


class LedgerConnections:
    """Lend the ledger's connection for reads, single-statement writes and transactions.

    Args:
        store: The integrity store.
    """

    def __init__(self, store: IntegrityStore) -> None:
        self.store = store
        self.sqlite = store.backend == "sqlite"
        self._lock = threading.Lock()
        self._kept: Any = None
        self._pid = os.getpid()
        self._dbapi: Any = None
        self._last_used = 0.0

    def _checkout(self) -> Any:
        pooled = self.store.engine.raw_connection()
        if not self.sqlite:
            # Each ledger statement is atomic on its own: no BEGIN/COMMIT round trips around it.
            pooled.dbapi_connection.autocommit = True  # type: ignore[union-attr]
        return pooled

    def _checkin(self, pooled: Any) -> None:
        with contextlib.suppress(Exception):
            if not self.sqlite and not pooled.dbapi_connection.closed:
                # Other users of the pool expect transactions.
                pooled.dbapi_connection.autocommit = False
            pooled.close()

    def _take(self) -> tuple[Any, bool]:
        """The kept connection (``True``) or, when another thread has it, a pooled one (``False``)."""
        if not self._lock.acquire(blocking=False):
            return self._checkout(), False
        try:
            if self._pid != os.getpid():
                _inherited.append(self._kept)
                self._kept, self._pid = None, os.getpid()
            now = time.monotonic()
            if self._kept is not None and now - self._last_used > _IDLE_SECONDS:
                # Idle long enough for a server or firewall to have dropped it: let the pool check it.
                kept, self._kept = self._kept, None
                self._checkin(kept)
            if self._kept is None:
                self._kept = self._checkout()
            self._last_used = now
        except BaseException:
            self._lock.release()
            raise
        return self._kept, True

    def _give_back(self, pooled: Any, kept: bool, failed: bool) -> None:
        if not kept:
            self._checkin(pooled)
            return
        try:
            if failed and _broken(pooled):
                self._kept = None
                with contextlib.suppress(Exception):
                    pooled.invalidate()
        finally:
            self._lock.release()

    def translate(self, exc: BaseException) -> BaseException | None:
        """The store error to raise for a driver error, or ``None`` to let ``exc`` through."""
        if isinstance(exc, sqlalchemy.exc.DBAPIError):
            # Only the pool raises these here: it could not connect.
            return self.store._unavailable(exc)
        if self._dbapi is None:
            self._dbapi = self.store.engine.dialect.loaded_dbapi
        if isinstance(exc, self._dbapi.OperationalError):
            return self.store._unavailable(exc)
        if isinstance(exc, self._dbapi.Error):
            return LedgerError(
                f"The integrity store ({self.store.location.display}) refused a ledger statement: "
                f"{str(exc).strip()}"
            )
        return None

    def read(self) -> _Borrowed:
        """A cursor for reads; each statement sees a consistent snapshot."""
        return _Borrowed(self, None)

    def write(self) -> _Borrowed:
        """A cursor for writes: one transaction on SQLite (the write lock taken at its start), autocommit on
        PostgreSQL, where each ledger statement is atomic on its own."""
        return _Borrowed(self, "BEGIN IMMEDIATE" if self.sqlite else None)

    def transaction(self) -> _Borrowed:
        """A cursor inside one transaction, committed on success and rolled back on error."""
        return _Borrowed(self, "BEGIN IMMEDIATE" if self.sqlite else "BEGIN")

    def close(self) -> None:
        """Return the kept connection to the pool (the next statement takes a new one)."""
        with self._lock:
            kept, self._kept = self._kept, None
            if kept is not None and self._pid == os.getpid():
                self._checkin(kept)


def _broken(pooled: Any) -> bool:
    connection = pooled.dbapi_connection
    return connection is None or bool(getattr(connection, "broken", False) or getattr(connection, "closed", 0))


class _Borrowed:
    """A connection lent for one ``with`` block, optionally inside a transaction; driver errors leave it as
    store errors. (A class rather than a generator: it wraps every ledger statement.)"""

    __slots__ = ("_begin", "_connections", "_kept", "_pooled")

    def __init__(self, connections: LedgerConnections, begin: str | None) -> None:
        self._connections = connections
        self._begin = begin

    def __enter__(self) -> LedgerCursor:
        try:
            self._pooled, self._kept = self._connections._take()
        except BaseException as exc:
            translated = self._connections.translate(exc)
            if translated is None:
                raise
            raise translated from exc
        cursor = LedgerCursor(self._pooled.dbapi_connection)
        if self._begin:
            try:
                cursor.run(self._begin)
            except BaseException as exc:
                self._connections._give_back(self._pooled, self._kept, True)
                translated = self._connections.translate(exc)
                if translated is None:
                    raise
                raise translated from exc
        return cursor

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if self._begin:
                cursor = LedgerCursor(self._pooled.dbapi_connection)
                if exc is None:
                    try:
                        cursor.run("COMMIT")
                    except BaseException as commit_error:
                        exc = commit_error
                if exc is not None:
                    with contextlib.suppress(Exception):
                        cursor.run("ROLLBACK")
        finally:
            self._connections._give_back(self._pooled, self._kept, exc is not None)
        if exc is not None:
            translated = self._connections.translate(exc)
            if translated is not None:
                raise translated from exc
            if exc_type is None:
                raise exc
