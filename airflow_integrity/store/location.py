"""Turn connection fields into a SQLAlchemy URL for a supported backend (PostgreSQL or SQLite)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from airflow_integrity.store.errors import StoreConfigurationError

POSTGRES_TYPES = frozenset({"postgres", "postgresql", "postgresql+psycopg", "psycopg"})
SQLITE_TYPES = frozenset({"sqlite"})
# Connection extras that are passed to libpq as query parameters of the URL.
_LIBPQ_EXTRAS = ("host", "sslmode", "sslrootcert", "sslcert", "sslkey", "application_name", "options")


@dataclass(frozen=True)
class StoreLocation:
    """Where the store lives: a backend name and the SQLAlchemy URL to reach it.

    Args:
        backend: ``"postgresql"`` or ``"sqlite"``.
        url: SQLAlchemy URL including the driver.
        source: Human-readable origin, used in error messages (for example the connection id).
    """

    backend: str
    url: URL
    source: str = "integrity store"
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """The URL with the password hidden, safe for logs and error messages."""
        return self.url.render_as_string(hide_password=True)

    @cached_property
    def key(self) -> str:
        """The whole URL, password included: what identifies the store within a process. Never log it."""
        return self.url.render_as_string(hide_password=False)

    def same_database_as(self, url: str) -> bool:
        """Whether the database URL ``url`` (for example Airflow's ``[database] sql_alchemy_conn``) names the
        database this store is in: the same SQLite file, or the same PostgreSQL database on a server both reach
        (any host or socket they share, at the same port)."""
        from sqlalchemy.engine import make_url

        try:
            other = make_url(url)
        except Exception:
            return False
        if self.backend == "sqlite":
            mine, theirs = (
                _sqlite_file(self.url),
                _sqlite_file(other) if other.drivername.startswith("sqlite") else None,
            )
            return mine is not None and theirs is not None and os.path.realpath(mine) == os.path.realpath(theirs)
        if not other.drivername.startswith("postgres"):
            return False
        if _database(self.url) != _database(other):
            return False
        return bool(_servers(self.url) & _servers(other))

    @classmethod
    def sqlite(cls, path: Path | str, *, source: str = "embedded SQLite store") -> StoreLocation:
        """Locate an SQLite store file."""
        return cls("sqlite", URL.create("sqlite", database=str(Path(path).expanduser())), source)

    @classmethod
    def from_url(cls, url: str, *, source: str = "integrity store") -> StoreLocation:
        """Locate a store from a URL such as ``postgresql://user:pw@host:5432/db`` or ``sqlite:///path``."""
        from sqlalchemy.engine import make_url

        try:
            parsed = make_url(url)
        except Exception as exc:
            raise StoreConfigurationError(f"{source}: {url!r} is not a database URL ({exc}).") from exc
        extra = dict(parsed.query)
        return cls.from_fields(
            source=source,
            conn_type=parsed.drivername,
            host=parsed.host,
            port=parsed.port,
            login=parsed.username,
            password=parsed.password,
            schema=parsed.database,
            extra=extra,
        )

    @classmethod
    def from_fields(
        cls,
        *,
        source: str,
        conn_type: str | None,
        host: str | None,
        port: int | None,
        login: str | None,
        password: str | None,
        schema: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> StoreLocation:
        """Locate a store from the fields of an Airflow connection.

        Connection type ``postgres`` (or ``integrity`` with extra ``backend=postgresql``, the default) selects
        PostgreSQL; ``sqlite`` (or ``integrity`` with ``backend=sqlite``) selects an SQLite file whose path is
        the connection's host or schema.
        """
        extra = dict(extra or {})
        kind = (conn_type or "").lower()
        if kind == "integrity":
            kind = str(extra.pop("backend", "postgresql")).lower()
        if kind in POSTGRES_TYPES:
            return cls._postgres(source, host, port, login, password, schema, extra)
        if kind in SQLITE_TYPES:
            path = schema or host
            if not path:
                raise StoreConfigurationError(
                    f"{source}: an SQLite store needs a file path in the connection's host or schema "
                    "field, for example sqlite:////var/lib/airflow/integrity.db."
                )
            return cls.sqlite(path, source=source)
        raise StoreConfigurationError(
            f"{source}: connection type {conn_type!r} is not a supported integrity store. Use a "
            "PostgreSQL connection (postgresql://user:password@host:5432/database) for production, or "
            "sqlite:////path/to/integrity.db for a single machine."
        )

    @classmethod
    def _postgres(
        cls,
        source: str,
        host: str | None,
        port: int | None,
        login: str | None,
        password: str | None,
        schema: str | None,
        extra: dict[str, Any],
    ) -> StoreLocation:
        query = {key: str(extra[key]) for key in _LIBPQ_EXTRAS if extra.get(key) not in (None, "")}
        if not host and "host" not in query:
            raise StoreConfigurationError(
                f"{source}: the PostgreSQL connection has no host. Set the connection's host "
                "(or extra 'host' to a unix socket directory)."
            )
        url = URL.create(
            "postgresql+psycopg",
            username=login or None,
            password=password or None,
            host=host or None,
            port=int(port) if port else None,
            database=schema or "postgres",
            query=query,
        )
        return cls("postgresql", url, source)


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", ""})


def _sqlite_file(url: URL) -> str | None:
    """The file of an SQLite URL (``None`` for an in-memory database, which nothing else can share)."""
    database = url.database or ""
    if database.startswith("file:"):
        database = database[5:].split("?", 1)[0]
    return None if database in ("", ":memory:") or "mode=memory" in str(url) else database


def _query_values(url: URL, name: str) -> list[str]:
    value = url.query.get(name)
    values = list(value) if isinstance(value, tuple) else [value] if value else []
    return [part.strip() for item in values for part in str(item).split(",") if part.strip()]


def _servers(url: URL) -> set[tuple[str, int]]:
    """Where a PostgreSQL URL may connect, as libpq reads it: the query's hosts and ports win over the URL's;
    sockets and loopback names count as this machine."""
    hosts = _query_values(url, "host") or [str(url.host or "")]
    ports = [int(port) for port in _query_values(url, "port") if port.isdigit()] or [int(url.port or 5432)]
    servers = set()
    for position, host in enumerate(hosts):
        port = ports[position] if position < len(ports) else ports[-1]
        local = host in _LOOPBACK or host.startswith("/")
        servers.add(("this machine" if local else host.lower(), port))
    return servers


def _database(url: URL) -> str:
    """The database a PostgreSQL URL names (libpq's default: the user's name)."""
    return str(url.query.get("dbname") or url.database or url.username or "")
