"""Where the data to validate comes from: a file or object-store path, an SQL table or query behind an Airflow
connection, or the JSON body of an HTTP endpoint behind an Airflow HTTP connection.

One :class:`DataSource` describes the source in JSON-serialisable form, so the same description works in an
operator, a TaskFlow decorator and a trigger (whose kwargs must be JSON). An upstream task's return value
(XCom) needs no description: it is handed to the validation as it is.

Rows handed on after validation are what the source holds, selected by position
(:mod:`airflow_integrity.validation.rows`): a file's own cells or record text, an SQL driver's values, the
text of the records in an HTTP body.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_integrity.validation.errors import DataError, SourceUnavailableError

# Connection extras that are libpq parameters (a socket directory as host, TLS files, ...); others (Airflow's
# own "cursor", "iam", ...) are not for the driver.
_LIBPQ_PARAMETERS = frozenset(
    {"host", "hostaddr", "port", "sslmode", "sslcert", "sslkey", "sslrootcert", "options", "connect_timeout"}
    | {"application_name", "target_session_attrs", "keepalives", "keepalives_idle", "sslcrl", "passfile"}
)


@dataclass(frozen=True)
class DataSource:
    """A source of data to validate, described by JSON-serialisable values.

    Args:
        kind: ``path``, ``sql`` or ``http``.
        path: Local path or object-store URI (``s3://bucket/key.csv``, ``file:///data/x.parquet``).
        storage_conn_id: Airflow connection of the object store, when the URI does not name one.
        file_format: ``csv``, ``tsv``, ``parquet``, ``json`` or ``jsonl`` when the suffix does not tell.
        read_options: Extra keyword arguments for the pandas reader.
        conn_id: The Airflow SQL connection (``kind="sql"``) or HTTP connection (``kind="http"``).
        sql: A SELECT statement (``kind="sql"``).
        table: A table name (``kind="sql"``).
        schema: The table's schema, when not the connection's default.
        endpoint: The HTTP endpoint, relative to the connection's host (``kind="http"``).
        method: The HTTP method.
        request_data: Query parameters (GET) or body (other methods).
        headers: Extra HTTP headers.
        records_path: Dotted path to the records in the JSON body, e.g. ``"result.items"``.
    """

    kind: str
    path: str | None = None
    storage_conn_id: str | None = None
    file_format: str | None = None
    read_options: dict[str, Any] | None = None
    conn_id: str | None = None
    sql: str | None = None
    table: str | None = None
    schema: str | None = None
    endpoint: str | None = None
    method: str = "GET"
    request_data: Any = None
    headers: dict[str, Any] | None = field(default=None)
    records_path: str | None = None

    def serialize(self) -> dict[str, Any]:
        """The source as a JSON-serialisable dict (only the fields that are set)."""
        defaults = DataSource(kind=self.kind)
        return {k: v for k, v in asdict(self).items() if k == "kind" or v != getattr(defaults, k)}

    @classmethod
    def deserialize(cls, values: Mapping[str, Any]) -> DataSource:
        """Rebuild a source from :meth:`serialize` output."""
        return cls(**dict(values))

    def label(self) -> str:
        """How logs and errors name the source (no credentials)."""
        if self.kind == "path":
            return f"file {self.path!r}"
        if self.kind == "sql":
            what = f"query {self.sql[:80]!r}" if self.sql else f"table {self.table!r}"
            return f"SQL {what} on connection {self.conn_id!r}"
        return f"HTTP {self.method} {self.endpoint!r} on connection {self.conn_id!r}"

    def load(self) -> Any:
        """Return what :func:`airflow_integrity.validation.validate` takes: a path object, an ``SqlSource``, or
        the JSON text of the records in the HTTP body (exactly as the endpoint sent it, so that the records are
        handed on as their own text).

        Raises:
            DataError: The connection is not an SQL connection, or the body holds no records.
            SourceUnavailableError: The HTTP endpoint cannot be reached or answered with an error status.
        """
        if self.kind == "path":
            return storage_path(str(self.path), conn_id=self.storage_conn_id)
        if self.kind == "sql":
            from airflow_integrity.validation.sql import SqlSource

            return SqlSource(
                sqlalchemy_url(str(self.conn_id)), query=self.sql, table=self.table, schema=self.schema
            )
        return self._fetch_records()

    def _fetch_records(self) -> Any:
        from airflow.providers.http.hooks.http import HttpHook

        from airflow_integrity.compat import AirflowException
        from airflow_integrity.validation.http_body import records_text_from_json_body

        hook = HttpHook(method=self.method, http_conn_id=str(self.conn_id))
        try:
            response = hook.run(self.endpoint, data=self.request_data, headers=self.headers)
        except AirflowException as exc:
            raise SourceUnavailableError(f"{self.label()} answered {exc}.") from None
        except OSError as exc:  # requests' connection errors are OSErrors
            raise SourceUnavailableError(
                f"{self.label()} cannot be reached: {type(exc).__name__}: {exc}"
            ) from None
        return records_text_from_json_body(response.content, records_path=self.records_path)


def storage_path(path: str, *, conn_id: str | None = None) -> Any:
    """A local ``pathlib.Path`` for a plain path, an ``ObjectStoragePath`` for a URI (``scheme://...``)."""
    if "://" in path:
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(path, conn_id=conn_id) if conn_id else ObjectStoragePath(path)
    from pathlib import Path

    return Path(path).expanduser()


def path_text(path: Any) -> str:
    """The text form of a path argument (``str``, ``os.PathLike`` or ``ObjectStoragePath``)."""
    if isinstance(path, str):
        return path
    if isinstance(path, os.PathLike) and type(path).__module__.startswith("pathlib"):
        return os.fspath(path)
    return str(path)


def sqlalchemy_url(conn_id: str) -> Any:
    """The SQLAlchemy URL of an Airflow SQL connection.

    The connection's own hook is asked first (any provider's ``DbApiHook``); without the provider installed,
    SQLite and PostgreSQL connections are still understood from their fields.

    Raises:
        DataError: The connection is not an SQL database SQLAlchemy can reach.
    """
    from airflow.sdk import BaseHook
    from sqlalchemy.engine import URL

    from airflow_integrity.compat import AirflowException

    conn = BaseHook.get_connection(conn_id)
    try:
        hook = conn.get_hook()
    except (AirflowException, ImportError):
        hook = None
    url = getattr(hook, "sqlalchemy_url", None) if hook is not None else None
    if url is not None:
        return url
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        database = conn.schema or conn.host
        if not database:
            raise DataError(f"SQL connection {conn_id!r} names no SQLite file; use sqlite:////path/to/file.db.")
        return URL.create("sqlite", database=database)
    if conn_type in ("postgres", "postgresql"):
        query = {k: str(v) for k, v in conn.extra_dejson.items() if k in _LIBPQ_PARAMETERS}
        return URL.create(
            "postgresql+psycopg",
            username=conn.login,
            password=conn.password,
            host=conn.host,
            port=conn.port,
            database=conn.schema,
            query=query,
        )
    raise DataError(
        f"Connection {conn_id!r} is of type {conn.conn_type!r}, which is not an SQL database this package can "
        "reach. Install the Airflow provider of that database (its hook gives the SQLAlchemy URL), or use a "
        "sqlite:// or postgresql:// connection."
    )
