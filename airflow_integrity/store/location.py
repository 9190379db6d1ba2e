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
        database this store is in: the same SQLite file, or the same PostgreSQL database on the same server."""
        from sqlalchemy.engine import make_url

        try:
            other = make_url(url)
        except Exception:
            return False
        if self.backend == "sqlite":
            if not other.drivername.startswith("sqlite") or not other.database or not self.url.database:
                return False
            return os.path.realpath(other.database) == os.path.realpath(self.url.database)
        if not other.drivername.startswith("postgres"):
            return False
        return _server(self.url) == _server(other) and (self.url.database or "") == (other.database or "")

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


def _server(url: URL) -> tuple[str, int]:
    """Where a PostgreSQL URL connects: (host or socket folder, port), loopback names as one."""
    host = str(url.host or url.query.get("host") or "")
    return ("loopback" if host in _LOOPBACK else host.lower(), int(url.port or 5432))
