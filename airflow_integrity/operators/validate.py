"""``ValidateDataOperator``: check the data one task hands to the next against a Great Expectations suite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_integrity.hooks.validation_policy import check_policy
from airflow_integrity.validation.suite_refs import check_suite_reference

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_integrity.hooks.validation import Handoff


def _templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


class ValidateDataOperator(BaseOperator):
    """Validate data with a Great Expectations suite; fail, warn or quarantine when it does not pass.

    Exactly one source: ``data`` (an upstream task's return value, e.g. ``register.output``: a DataFrame,
    list of records, dict of columns or JSON), ``path`` (CSV, Parquet, JSON, JSON lines; local or object
    storage), ``sql`` / ``table`` with ``conn_id`` (any Airflow SQL connection; evaluated in the database
    unless rows are needed for quarantine), or ``endpoint`` with ``http_conn_id`` (the JSON body's records).

    The full GX result is stored in the integrity store and the validation is recorded in the audit trail
    (``validation.passed`` / ``validation.warned`` / ``validation.failed``). Expectations of severity
    ``warning`` never fail the task.

    Return value (XCom): ``{"summary": {...}}``, where the summary (JSON) holds ``success``, ``status``, GX's
    statistics, each failed expectation with its unexpected count and a few samples, the data's
    ``fingerprint`` and the ``result_id`` of the stored full result. With ``on_failure="quarantine"`` it also
    holds ``"quarantine"`` (counts and file) and ``"data"``: the good rows, which is what downstream tasks
    should consume (``validate.output["data"]``). ``return_data=True`` adds ``"data"`` (all rows) under the
    other policies. ``"data"`` is what came in, unchanged, selected by position: the original records of a
    list of records (or of parsed JSON), the rows of a DataFrame, the values of a dict of columns; rows read
    from a file, a table or an endpoint as a list of records.

    Args:
        suite: Suite reference: a GX ``ExpectationSuite``, a list of expectations (GX objects or dicts), a
            suite dict in GX's JSON format, a path to a suite ``.json`` file, or a suite name with
            ``context_dir``. Checked cheaply when the DAG is parsed.
        data: The data itself (templated; an ``XComArg`` is resolved).
        path: File or object-store path (templated).
        file_format: ``csv``, ``tsv``, ``parquet``, ``json`` or ``jsonl`` when the suffix does not tell.
        read_options: Extra arguments of the pandas reader.
        conn_id: Airflow SQL connection for ``sql`` / ``table``.
        sql: A SELECT statement (templated).
        table: A table name (templated).
        schema: The table's schema.
        http_conn_id: Airflow HTTP connection for ``endpoint``.
        endpoint: HTTP endpoint returning JSON records (templated).
        method: HTTP method.
        request_data: Query parameters or body of the request (templated).
        headers: Extra request headers (templated).
        records_path: Where the records are in the JSON body, e.g. ``"result.items"``.
        expectation_parameters: Values of ``{"$PARAMETER": ...}`` arguments in the suite (templated).
        context_dir: GX project root, for suites given by name.
        on_failure: ``fail`` (default), ``warn`` or ``quarantine``.
        quarantine_path: Quarantine directory, or file (``.csv``, ``.parquet``, ``.jsonl``), local or object
            storage (templated); required for ``quarantine``. Files are named after DAG, task, run and try.
        quarantine_format: ``csv`` (default), ``parquet`` (needs pyarrow) or ``jsonl``.
        max_unexpected_fraction: With ``quarantine``, the task fails when more than this fraction of the rows
            is bad (default 0.1).
        quarantine_warnings: Also quarantine rows rejected only by ``warning`` expectations.
        return_data: Also return the validated rows under ``fail`` / ``warn``.
        allow_empty: Accept data without rows.
        samples: Sample unexpected values in the summary as ``values``, ``hashed`` or ``none``.
        business_key: Business key of the audit events (templated), e.g. ``"intake-{{ ds }}"``.
        integrity_conn_id: The integrity store connection (default ``[integrity] conn_id``).
    """

    template_fields: Sequence[str] = (
        "suite",
        "data",
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
        "expectation_parameters",
        "context_dir",
        "quarantine_path",
        "business_key",
    )
    template_fields_renderers = {"sql": "sql", "expectation_parameters": "json", "request_data": "json"}
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        suite: Any,
        data: Any = None,
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
        expectation_parameters: Mapping[str, Any] | None = None,
        context_dir: str | None = None,
        on_failure: str = "fail",
        quarantine_path: Any = None,
        quarantine_format: str | None = None,
        max_unexpected_fraction: float = 0.1,
        quarantine_warnings: bool = False,
        return_data: bool = False,
        allow_empty: bool = False,
        samples: str = "values",
        business_key: str | None = None,
        integrity_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_policy(on_failure, quarantine_path=quarantine_path, max_unexpected_fraction=max_unexpected_fraction)
        given = [name for name, value in (("data", data), ("path", path), ("sql", sql), ("table", table),
                 ("endpoint", endpoint)) if value is not None]  # fmt: skip
        if len(given) != 1:
            raise ValueError(
                f"ValidateDataOperator {self.task_id!r} needs exactly one of data=, path=, sql=, table= or "
                f"endpoint=; got {', '.join(given) or 'none'}."
            )
        if not _templated(suite) and not _templated(context_dir):
            check_suite_reference(suite, context_dir=context_dir)
        self.suite = suite
        self.data = data
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
        self.expectation_parameters = expectation_parameters
        self.context_dir = context_dir
        self.on_failure = on_failure
        self.quarantine_path = quarantine_path
        self.quarantine_format = quarantine_format
        self.max_unexpected_fraction = max_unexpected_fraction
        self.quarantine_warnings = quarantine_warnings
        self.return_data = return_data
        self.allow_empty = allow_empty
        self.samples = samples
        self.business_key = business_key
        self.integrity_conn_id = integrity_conn_id
        self._lineage: dict[str, Any] | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate, record, apply ``on_failure``; return the summary (and the good rows for quarantine)."""
        from airflow_integrity.hooks.data_sources import source_from_arguments
        from airflow_integrity.hooks.integrity import IntegrityCheckHook
        from airflow_integrity.hooks.validation import enforce, validate_or_fail

        hook = IntegrityCheckHook(integrity_conn_id=self.integrity_conn_id)
        source = validate_or_fail(
            lambda: source_from_arguments(
                path=self.path,
                file_format=self.file_format,
                read_options=self.read_options,
                conn_id=self.conn_id,
                sql=self.sql,
                table=self.table,
                schema=self.schema,
                http_conn_id=self.http_conn_id,
                endpoint=self.endpoint,
                method=self.method,
                request_data=self.request_data,
                headers=self.headers,
                records_path=self.records_path,
            )
        )
        run = validate_or_fail(
            lambda: hook.validate_data(
                self.data,
                self.suite,
                source=source,
                label=f"data given to task {self.task_id!r}",
                on_failure=self.on_failure,
                collect_unexpected_rows=self.on_failure == "quarantine",
                business_key=self.business_key,
                expectation_parameters=self.expectation_parameters,
                context_dir=self.context_dir,
                allow_empty=self.allow_empty,
                samples=self.samples,
            )
        )
        self._lineage = {
            "summary": run.summary,
            "source": source.serialize() if source is not None else None,
            "expectations": [
                {"index": e.index, "type": e.type, "severity": e.severity, "column": ", ".join(e.columns) or None}
                for e in run.outcome.suite.expectations
            ],
        }
        handoff: Handoff = enforce(
            hook,
            run,
            on_failure=self.on_failure,
            quarantine_path=self.quarantine_path,
            quarantine_format=self.quarantine_format,
            max_unexpected_fraction=self.max_unexpected_fraction,
            quarantine_warnings=self.quarantine_warnings,
            business_key=self.business_key,
        )
        result: dict[str, Any] = {"summary": run.summary}
        if handoff.quarantine is not None:
            result["quarantine"] = handoff.quarantine
            result["data"] = handoff.good
        elif self.return_data and run.outcome.rows is not None:
            result["data"] = run.outcome.rows.hand_on()
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the validated dataset with a ``dataQualityAssertions`` facet (``None`` without
        the OpenLineage provider, or before a validation ran)."""
        from airflow_integrity.lineage import dataset_identity, operator_lineage

        if self._lineage is None:
            return None
        namespace, name = dataset_identity(self._lineage["source"], fallback_name=f"{self.dag_id}.{self.task_id}")
        return operator_lineage(self._lineage["summary"], namespace, name, self._lineage["expectations"])
