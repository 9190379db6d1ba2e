"""SQL tables and queries as data to validate.

By default the expectations are evaluated by the database through GX's SQL datasource: GX translates each
expectation into SQL, so no rows travel to the worker (faster than ``pandas.read_sql`` plus validation in
pandas; bench/validation_overhead.py measures both). Rows are fetched only when they are needed in Python: to
split good from bad rows (quarantine) or to hand them on (``return_data``), which also fingerprints their
content. They are fetched once: the driver's values (``int``, ``Decimal``, ``datetime``, ...) are what is
handed on and quarantined, and a frame built from them as ``pandas.read_sql`` builds it (an integer column
with a null becomes floats there) is what Great Expectations checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_integrity.validation.errors import DataError, SourceUnavailableError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class SqlSource:
    """The rows of an SQL query or table, reached through SQLAlchemy.

    Args:
        connection: An SQLAlchemy URL (string or ``URL``) or ``Engine``; from an Airflow SQL connection use the
            hook's ``sqlalchemy_url`` or ``get_sqlalchemy_engine()``.
        query: A SELECT statement (mutually exclusive with ``table``).
        table: A table name (mutually exclusive with ``query``).
        schema: The table's schema, when not the connection's default.
    """

    connection: Any
    query: str | None = None
    table: str | None = None
    schema: str | None = None

    def __post_init__(self) -> None:
        if (self.query is None) == (self.table is None):
            raise DataError(
                "An SqlSource needs exactly one of query= (a SELECT statement) or table= (a table name)."
            )
        if self.query is not None and not self.query.strip():
            raise DataError("The SqlSource query is empty; pass a SELECT statement.")

    def _url(self) -> Any:
        import sqlalchemy as sa

        if isinstance(self.connection, sa.engine.Engine):
            return self.connection.url
        try:
            return sa.engine.make_url(self.connection)
        except sa.exc.ArgumentError:
            raise DataError(
                f"SqlSource connection {str(self.connection)[:40]!r}... is not an SQLAlchemy URL or Engine "
                "(e.g. postgresql+psycopg://user:password@host/db); from an Airflow connection use the hook's "
                "sqlalchemy_url."
            ) from None

    def connection_string(self) -> str:
        """The SQLAlchemy URL with credentials, for GX's SQL datasource."""
        return self._url().render_as_string(hide_password=False)

    def describe(self) -> dict[str, Any]:
        """Identity of the data without credentials: dialect, database, and the query or table."""
        url = self._url()
        target = {"query": self.query} if self.query is not None else {"table": self.table, "schema": self.schema}
        return {"dialect": url.get_backend_name(), "database": url.render_as_string(hide_password=True), **target}

    def label(self) -> str:
        """How error messages name this source."""
        what = f"query {self.query[:80]!r}" if self.query is not None else f"table {self.table!r}"
        return f"SQL {what} on {self.describe()['database']}"

    def _engine(self) -> tuple[Any, bool]:
        import sqlalchemy as sa

        if isinstance(self.connection, sa.engine.Engine):
            return self.connection, False
        return sa.create_engine(self._url()), True

    def _selectable(self) -> Any:
        import sqlalchemy as sa

        if self.query is not None:
            return sa.text(self.query).columns().subquery("integrity_source")
        return sa.table(str(self.table), schema=self.schema)

    def _run(self, action: Any) -> Any:
        import sqlalchemy as sa

        engine, owned = self._engine()
        try:
            try:
                connection = engine.connect()
            except sa.exc.SQLAlchemyError as exc:
                raise SourceUnavailableError(
                    f"{self.label()}: cannot connect: {exc.__class__.__name__}: {exc}"
                ) from None
            with connection:
                try:
                    return action(connection)
                except sa.exc.SQLAlchemyError as exc:
                    detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
                    raise DataError(
                        f"{self.label()} failed: {detail}. Check the query and the table names."
                    ) from None
        finally:
            if owned:
                engine.dispose()

    def probe(self) -> tuple[list[str], bool]:
        """The result's column names and whether it has at least one row (one ``LIMIT 1`` query)."""
        import sqlalchemy as sa

        statement = sa.select(sa.text("*")).select_from(self._selectable()).limit(1)

        def action(conn: Any) -> tuple[list[str], bool]:
            result = conn.execute(statement)
            names = [str(k) for k in result.keys()]  # noqa: SIM118 (a Result is not a dict)
            return names, result.first() is not None

        columns, has_rows = self._run(action)
        return columns, has_rows

    def read_frame(self) -> pd.DataFrame:
        """Fetch all rows into a DataFrame, as ``pandas.read_sql`` does."""
        return self.read_table()[0]

    def read_table(self) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
        """Fetch all rows once: a DataFrame for validation, and one record of the driver's values per row.

        Raises:
            DataError: The query fails, or its result has the same column name twice (a record could not hold
                both: give them distinct names with ``AS``).
        """
        import pandas as pd
        import sqlalchemy as sa

        statement = (
            sa.text(self.query)
            if self.query is not None
            else sa.select(sa.text("*")).select_from(self._selectable())
        )

        def fetch(conn: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
            result = conn.execute(statement)
            return [str(k) for k in result.keys()], [tuple(row) for row in result.fetchall()]  # noqa: SIM118

        columns, rows = self._run(fetch)
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise DataError(
                f"{self.label()} returns the column name(s) {repeated} more than once; give each column its own "
                "name (SELECT a.id AS claim_id, b.id AS patient_id ...)."
            )
        frame = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
        return frame, [dict(zip(columns, row, strict=True)) for row in rows]
