"""``IntegrityStore``: one object per store location, the entry point to its schema and data."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import TextClause, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from airflow_integrity.store import migrate
from airflow_integrity.store.connections import (
    READONLY,
    driver_sql,
    get_engine,
    on_driver_connection,
    planned_for_values,
)
from airflow_integrity.store.errors import SchemaNotCurrentError, StoreUnavailableError
from airflow_integrity.store.location import StoreLocation

T = TypeVar("T")
_checked: set[str] = set()
_checked_lock = threading.Lock()


@dataclass(frozen=True)
class StoreStatus:
    """What ``describe()`` reports about a reachable store."""

    backend: str
    location: str
    store_id: str | None
    revision: str | None
    head: str | None

    @property
    def current(self) -> bool:
        """Whether the schema is at the revision this package expects."""
        return self.revision == self.head

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view."""
        return {
            "backend": self.backend,
            "location": self.location,
            "store_id": self.store_id,
            "revision": self.revision,
            "head": self.head,
            "current": self.current,
        }


class Reads(Protocol):
    """Read-only statements on the connection of :meth:`IntegrityStore.reading`."""

    def all(self, statement: TextClause, params: Mapping[str, Any]) -> list[Any]:
        """Every row of ``statement`` (SQLAlchemy text, ``:name`` parameters), each read by position."""


class _EngineReads:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def all(self, statement: TextClause, params: Mapping[str, Any]) -> list[Any]:
        return list(self._connection.execute(statement, dict(params)).all())


class _DriverReads:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def all(self, statement: TextClause, params: Mapping[str, Any]) -> list[Any]:
        with self._conn.cursor() as cursor:
            cursor.execute(driver_sql(statement.text), params, prepare=False)
            return cursor.fetchall()


class IntegrityStore:
    """The dedicated integrity database.

    Args:
        location: Where the store lives.
        busy_timeout: Seconds an SQLite writer waits for another process's lock.
    """

    def __init__(self, location: StoreLocation, *, busy_timeout: float = 60.0) -> None:
        self.location = location
        self.busy_timeout = busy_timeout

    @property
    def backend(self) -> str:
        """``"postgresql"`` or ``"sqlite"``."""
        return self.location.backend

    @property
    def engine(self) -> Engine:
        """This process's engine for the store."""
        return get_engine(self.location, busy_timeout=self.busy_timeout)

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return StoreUnavailableError(
            f"Cannot reach the integrity store ({self.location.source}: {self.location.display}): "
            f"{reason[0] if reason else type(exc).__name__}. Check that the database is running and that "
            "the connection's host, port, login and database are right."
        )

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction, committed on success and rolled back on error."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except OperationalError as exc:
            if exc.connection_invalidated or _is_connect_error(exc):
                raise self._unavailable(exc) from exc
            raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (no write lock on SQLite; statements planned for their values on PostgreSQL)."""
        try:
            with (
                self.engine.connect() as raw,
                raw.execution_options(**{READONLY: True}) as connection,
                connection.begin(),
                planned_for_values(connection),
            ):
                yield connection
        except OperationalError as exc:
            if exc.connection_invalidated or _is_connect_error(exc):
                raise self._unavailable(exc) from exc
            raise

    def reading(self, work: Callable[[Reads], T]) -> T:
        """Run ``work``, whose read-only statements go through the :class:`Reads` it is given, on one connection.

        On PostgreSQL that is a driver connection in autocommit mode: a statement is one round trip (no liveness
        ping, no BEGIN and COMMIT), never prepared (planned for its values, see
        :func:`~airflow_integrity.store.connections.planned_for_values`), and ``work`` runs again on a new
        connection when a reused one turns out to be dead. Each statement sees the data committed when it
        starts. On SQLite, a read transaction (:meth:`read`).

        Raises:
            StoreUnavailableError: The database cannot be reached.
        """
        if self.backend == "sqlite":
            with self.read() as connection:
                return work(_EngineReads(connection))
        return on_driver_connection(self, lambda conn: work(_DriverReads(conn)))

    def ping(self) -> None:
        """Open a connection and run a trivial query; raise ``StoreUnavailableError`` if that fails."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except DBAPIError as exc:
            raise self._unavailable(exc) from exc

    def migrate(self) -> migrate.MigrationResult:
        """Bring the schema to the newest revision (safe to run from several processes at once)."""
        try:
            result = migrate.upgrade(self.engine)
        except OperationalError as exc:
            if _is_connect_error(exc):
                raise self._unavailable(exc) from exc
            raise
        except ProgrammingError as exc:
            from airflow_integrity.store.roles import refused_migration

            refused = refused_migration(self, exc)
            if refused is None:
                raise
            raise refused from exc
        with _checked_lock:
            _checked.add(self._key)
        return result

    def is_current(self) -> bool:
        """Whether the schema is at the revision this package expects (one query; nothing is changed)."""
        with self.read() as connection:
            return migrate.is_at_head(connection)

    @property
    def _key(self) -> str:
        return self.location.key

    def describe(self) -> StoreStatus:
        """Report backend, location, store id and schema revision."""
        self.ping()
        with self.read() as connection:
            revision = migrate.current_revision(connection)
            store_id = None
            if revision is not None:
                store_id = connection.execute(
                    text("SELECT store_id FROM integrity_store_info WHERE id = 1")
                ).scalar_one_or_none()
        return StoreStatus(
            backend=self.backend,
            location=self.location.display,
            store_id=store_id,
            revision=revision,
            head=migrate.head_revision(),
        )

    def ensure_schema(self, *, auto_migrate: bool) -> None:
        """Make sure the schema is current once per process: migrate it or explain how to."""
        with _checked_lock:
            if self._key in _checked:
                return
        if self.is_current():
            with _checked_lock:
                _checked.add(self._key)
            return
        if auto_migrate:
            self.migrate()
            return
        status = self.describe()
        if not status.current:
            raise SchemaNotCurrentError(
                f"The integrity store {status.location} is at schema revision {status.revision or 'none'} "
                f"but this airflow-integrity needs {status.head}. Run `airflow integrity db migrate`."
            )
        with _checked_lock:
            _checked.add(self._key)


def _is_connect_error(exc: OperationalError) -> bool:
    message = str(exc.orig or exc).lower()
    return any(
        marker in message
        for marker in (
            "connection refused",
            "could not connect",
            "could not translate host name",
            "name or service not known",
            "timeout expired",
            "no such host",
            "connection to server",
            "unable to open database file",
            "password authentication failed",
        )
    ) or ("database" in message and "does not exist" in message)
