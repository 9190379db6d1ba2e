"""The arguments that name a validating task's data source, written once: the mixin that takes them
(:class:`DataSourceArguments`), the names a user may template, and the one "exactly one source" check. Light
enough for a DAG file to import; the source itself is built at run time by
:func:`airflow_integrity.hooks.data_sources.source_from_arguments`."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_integrity.validation.errors import DataError

if TYPE_CHECKING:
    from airflow_integrity.hooks.data_sources import DataSource

# The source arguments a user may template (see DataSourceArguments for all of them).
SOURCE_TEMPLATE_FIELDS = (
    "path",
    "conn_id",
    "sql",
    "table",
    "schema",
    "http_conn_id",
    "endpoint",
    "request_data",
    "headers",
    "records_path",
)


def check_one_source(
    values: Mapping[str, Any], *, owner: str, required: bool = True, error: type[Exception] | None = None
) -> list[str]:
    """The one check that a task names a single source among ``values`` (``data``, ``path``, ``sql``, ``table``,
    ``endpoint``; an empty value is none); returns the names given.

    Args:
        values: The candidate sources by argument name.
        owner: Who takes them, for the message (``ValidateDataOperator 'check'``).
        required: Whether naming none is an error too (an operator given its data in ``data`` needs no source).
        error: What to raise: ``ValueError`` when a DAG is parsed, :class:`DataError` (the default) when it runs.

    Raises:
        DataError: Several are given, or none when one is required; the message names them and the choices.
    """
    given = [
        name for name, value in values.items() if value is not None and not (isinstance(value, str) and not value)
    ]
    if len(given) > 1 or (required and not given):
        *first, last = [f"{name}=" for name in values]
        choices = f"{', '.join(first)} or {last}" if first else last
        raise (error or DataError)(f"{owner} needs exactly one of {choices}; got {', '.join(given) or 'none'}.")
    return given


class DataSourceArguments:
    """The data-source arguments of :class:`~airflow_integrity.operators.validate.ValidateDataOperator` and
    :class:`~airflow_integrity.sensors.validated_data.ValidatedDataSensor`: taken by this mixin's ``__init__``
    (cooperatively, before the operator's base class), kept as attributes so Airflow templates them, and turned
    into one :class:`DataSource` when the task runs (Airflow's ``BaseSQLOperator`` gives its check operators
    their connection arguments the same way).

    Args:
        path: File or object-store path (templated): CSV, TSV, Parquet, JSON or JSON lines.
        file_format: ``csv``, ``tsv``, ``parquet``, ``json`` or ``jsonl`` when the suffix does not tell.
        read_options: Extra arguments of the pandas reader.
        conn_id: Airflow SQL connection for ``sql`` / ``table`` (templated).
        sql: A SELECT statement (templated).
        table: A table name (templated).
        schema: The table's schema (templated).
        http_conn_id: Airflow HTTP connection for ``endpoint`` (templated).
        endpoint: HTTP endpoint returning JSON records (templated).
        method: HTTP method.
        request_data: Query parameters (GET) or body of the request (templated).
        headers: Extra request headers (templated).
        records_path: Where the records are in the JSON body, e.g. ``"result.items"`` (templated).
    """

    def __init__(
        self,
        *,
        path: Any = None,
        file_format: str | None = None,
        read_options: Mapping[str, Any] | None = None,
        conn_id: str | None = None,
        sql: str | None = None,
        table: str | None = None,
        schema: str | None = None,
        http_conn_id: str | None = None,
        endpoint: str | None = None,
        method: str = "GET",
        request_data: Any = None,
        headers: Mapping[str, Any] | None = None,
        records_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.file_format = file_format
        self.read_options = read_options
        self.conn_id = conn_id
        self.sql = sql
        self.table = table
        self.schema = schema
        self.http_conn_id = http_conn_id
        self.endpoint = endpoint
        self.method = method
        self.request_data = request_data
        self.headers = headers
        self.records_path = records_path

    def named_sources(self) -> dict[str, Any]:
        """The arguments that each name a source, for :func:`check_one_source`."""
        return {"path": self.path, "sql": self.sql, "table": self.table, "endpoint": self.endpoint}

    def data_source(self) -> DataSource | None:
        """The source the (rendered) arguments describe, or ``None`` when they describe none."""
        return source_from_arguments(**{name: getattr(self, name) for name in SOURCE_ARGUMENTS})


def source_from_arguments(**arguments: Any) -> DataSource | None:
    """Build the one :class:`DataSource` the arguments (those of :class:`DataSourceArguments`) describe, or
    ``None`` when they describe none.

    Raises:
        TypeError: An argument that is not a source argument.
        DataError: More than one source is given, or an SQL source without ``conn_id`` / an HTTP source without
            ``http_conn_id``; the message names the arguments.
    """
    from airflow_integrity.hooks.data_sources import DataSource, path_text

    unknown = sorted(set(arguments) - set(SOURCE_ARGUMENTS))
    if unknown:
        raise TypeError(f"Not data-source arguments: {', '.join(unknown)}; use those of DataSourceArguments.")
    given = {**SOURCE_DEFAULTS, **arguments}
    path, sql, table, endpoint, conn_id = (given[n] for n in ("path", "sql", "table", "endpoint", "conn_id"))
    named = {"path": path, "sql": sql, "table": table, "endpoint": endpoint}
    if not check_one_source(named, owner="A data source", required=False):
        return None
    if path:
        return DataSource(
            kind="path",
            path=path_text(path),
            storage_conn_id=getattr(path, "conn_id", None),
            file_format=given["file_format"],
            read_options=dict(given["read_options"]) if given["read_options"] else None,
        )
    if sql or table:
        if not conn_id:
            raise DataError("An SQL source needs conn_id=, the Airflow connection of the database.")
        return DataSource(kind="sql", conn_id=conn_id, sql=sql, table=table, schema=given["schema"])
    if not given["http_conn_id"]:
        raise DataError("An HTTP source needs http_conn_id=, the Airflow HTTP connection of the endpoint.")
    return DataSource(
        kind="http",
        conn_id=given["http_conn_id"],
        endpoint=endpoint,
        method=str(given["method"]).upper(),
        request_data=given["request_data"],
        headers=dict(given["headers"]) if given["headers"] else None,
        records_path=given["records_path"],
    )


_PARAMETERS = inspect.signature(DataSourceArguments.__init__).parameters
SOURCE_ARGUMENTS = tuple(name for name, p in _PARAMETERS.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)
SOURCE_DEFAULTS = {name: _PARAMETERS[name].default for name in SOURCE_ARGUMENTS}
