"""Run a suite against data with Great Expectations and return a compact summary plus the full result."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_integrity.validation.data import is_path_like, table_from_path, table_from_value
from airflow_integrity.validation.errors import EmptyDataError, MissingColumnError
from airflow_integrity.validation.rows import TableRows
from airflow_integrity.validation.sql import SqlSource
from airflow_integrity.validation.suites import LoadedSuite, load_suite
from airflow_integrity.validation.summary import SampleMode, build_summary, check_samples

if TYPE_CHECKING:
    import pandas as pd

    from airflow_integrity.validation.fingerprint import PendingFingerprint

ResultFormat = Literal["BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE"]
_LIST_KEYS = ("unexpected_list", "unexpected_index_list")


@dataclass
class ValidationOutcome:
    """The result of :func:`validate`.

    Args:
        summary: Compact JSON-serialisable summary (bounded size): safe for XCom and audit events.
        full_result: GX's complete result as a JSON-serialisable dict, for the integrity store (not XCom).
            Row lists longer than ``full_result_list_limit`` are cut, with ``<key>_omitted`` giving the count.
        suite: The loaded suite.
        frame: The DataFrame that was validated (``None`` when an SQL query was validated in the database).
        unexpected_rows: Per expectation index, the row positions each row-level expectation rejected; only
            when ``collect_unexpected_rows=True``.
        rows: The rows as they came in, from which rows are handed on by position (see
            :mod:`airflow_integrity.validation.rows`): the records, columns or frame given, the text of JSON
            records, a CSV file's cell text, an SQL driver's values; ``None`` when SQL was validated in the
            database.
    """

    summary: dict[str, Any]
    full_result: dict[str, Any]
    suite: LoadedSuite
    frame: pd.DataFrame | None = field(default=None, repr=False)
    unexpected_rows: dict[int, list[int]] | None = field(default=None, repr=False)
    rows: TableRows | None = field(default=None, repr=False)

    @property
    def success(self) -> bool:
        """Whether no expectation of severity ``critical`` failed."""
        return bool(self.summary["success"])

    @property
    def failures(self) -> list[dict[str, Any]]:
        """The failed expectations listed in the summary (critical first)."""
        return list(self.summary["failures"])

    def describe_failures(self, limit: int = 10) -> str:
        """A readable multi-line account of what failed, for task logs and exception messages."""
        stats = self.summary["statistics"]
        by_severity = ", ".join(f"{n} {s}" for s, n in self.summary["failed_by_severity"].items() if n)
        lines = [
            f"Suite {self.summary['suite']['name']!r} on data {self.summary['data'].get('fingerprint')}: "
            f"{stats.get('unsuccessful_expectations', 0)} of {stats.get('evaluated_expectations', 0)} "
            f"expectations failed ({by_severity or 'none'})."
        ]
        for failure in self.summary["failures"][:limit]:
            where = failure.get("column") or ", ".join(failure.get("columns", [])) or "table"
            detail = failure.get("error") or (
                f"{failure['unexpected_count']} unexpected ({failure.get('unexpected_percent', 0):.2f}%)"
                if failure.get("unexpected_count") is not None
                else f"observed {failure.get('observed_value')!r}"
            )
            samples = f"; e.g. {failure['samples']}" if failure.get("samples") else ""
            lines.append(
                f"  [{failure['severity']}] #{failure['index']} {failure['type']} on {where}: {detail}{samples}"
            )
        hidden = len(self.summary["failures"]) - limit + self.summary.get("failures_omitted", 0)
        if hidden > 0:
            lines.append(f"  ... and {hidden} more failed expectations (see the full result).")
        return "\n".join(lines)


def _to_table(
    data: Any, *, label: str, file_format: str | None, read_options: Mapping[str, Any] | None
) -> tuple[pd.DataFrame, TableRows]:
    if is_path_like(data):
        return table_from_path(data, file_format=file_format, read_options=read_options)
    return table_from_value(data, label=label)


def _check_columns(suite: LoadedSuite, columns: list[str], *, label: str) -> None:
    present = set(columns)
    problems = []
    for info in suite.expectations:
        for column in info.columns:
            if column not in present:
                close = [c for c in columns if c.lower() == column.lower()]
                close = close or difflib.get_close_matches(column, columns, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"expectation #{info.index} ({info.type}) needs column {column!r}{hint}")
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        listing = ", ".join(repr(c) for c in columns[:30]) + (" ..." if len(columns) > 30 else "")
        raise MissingColumnError(
            f"Suite {suite.name!r} does not fit {label}: {shown}. The data has columns {listing or '(none)'}. "
            "Fix the column names in the suite or the upstream task's output (or pass on_missing_column='fail' "
            "to report it as a failed expectation instead)."
        )


def _gx_result_format(result_format: ResultFormat | Mapping[str, Any], collect: bool) -> Any:
    if collect:
        return {
            "result_format": "COMPLETE",
            "partial_unexpected_count": 20,
            "return_unexpected_index_query": False,
        }
    return dict(result_format) if isinstance(result_format, Mapping) else result_format


def validate(
    data: Any,
    suite: Any,
    *,
    result_format: ResultFormat | Mapping[str, Any] = "SUMMARY",
    context_dir: str | os.PathLike[str] | None = None,
    suite_name: str | None = None,
    expectation_parameters: Mapping[str, Any] | None = None,
    allow_empty: bool = False,
    on_missing_column: Literal["raise", "fail"] = "raise",
    collect_unexpected_rows: bool = False,
    keep_rows: bool = False,
    sample_size: int = 5,
    samples: SampleMode = "values",
    sample_key: bytes | None = None,
    max_summary_bytes: int = 16 * 1024,
    full_result_list_limit: int = 1000,
    file_format: str | None = None,
    read_options: Mapping[str, Any] | None = None,
    label: str = "data",
) -> ValidationOutcome:
    """Validate data against a suite with Great Expectations.

    Args:
        data: A DataFrame, list of records, dict of columns or JSON text (an upstream task's return value); a
            ``pathlib.Path`` / ``ObjectStoragePath`` to a CSV, Parquet, JSON or JSON-lines file; or an
            :class:`~airflow_integrity.validation.sql.SqlSource`, validated in the database unless rows are
            needed (``collect_unexpected_rows``, ``keep_rows``).
        suite: Any suite reference accepted by :func:`~airflow_integrity.validation.suites.load_suite`.
        result_format: GX result format for the run (``SUMMARY`` by default).
        context_dir: GX project root, for suites given by name.
        suite_name: Name for an inline list of expectations.
        expectation_parameters: Values for ``{"$PARAMETER": ...}`` arguments in the suite.
        allow_empty: Accept data with no rows (every row-level expectation passes vacuously on it).
        on_missing_column: ``raise`` a :class:`MissingColumnError` before running when an expectation names a
            column the data lacks, or let GX ``fail`` that expectation.
        collect_unexpected_rows: Keep the positions of rejected rows (runs GX with ``COMPLETE``) for quarantine.
        keep_rows: Fetch the rows of an SQL source (and validate them in Python) so that they can be handed on
            (``return_data``); implied by ``collect_unexpected_rows``.
        sample_size: Sample unexpected values per failed expectation in the summary.
        samples: ``values``, ``hashed`` (for sensitive data: keyed fingerprints) or ``none``; see
            :mod:`airflow_integrity.validation.summary` for what each puts into the summary.
        sample_key: The secret key of ``hashed`` fingerprints (required for it; the hook passes the store's salt).
        max_summary_bytes: Bound of the summary's JSON size.
        full_result_list_limit: Longest row list kept per expectation in ``full_result``.
        file_format: Format of a file when its suffix does not tell.
        read_options: Extra keyword arguments for the pandas file reader.
        label: How errors name the data (e.g. ``"return value of task 'register'"``).

    Raises:
        SuiteError: The suite is malformed (MissingColumnError: it names a column the data lacks).
        DataError: The data is not a table, cannot be read, or is not serialisable (EmptyDataError: no rows).
        SourceUnavailableError: The SQL database cannot be reached.
        ValueError: An unknown ``samples`` mode, or ``hashed`` without ``sample_key``.
    """
    check_samples(samples, sample_key)
    loaded = load_suite(suite, context_dir=context_dir, name=suite_name)
    collect = collect_unexpected_rows
    pending: PendingFingerprint | None = None
    rows: TableRows | None = None
    if isinstance(data, SqlSource) and not (collect or keep_rows):
        frame, data_info = None, _prepare_query(data, loaded, allow_empty=allow_empty, check=on_missing_column)
    else:
        if isinstance(data, SqlSource):
            label = data.label()
            frame, records = data.read_table()
            rows = TableRows(records, "records")
        else:
            if is_path_like(data) and label == "data":
                label = f"file {str(data)!r}"
            frame, rows = _to_table(data, label=label, file_format=file_format, read_options=read_options)
        pending = _prepare_frame(frame, loaded, label=label, allow_empty=allow_empty, check=on_missing_column)
    gx_format = _gx_result_format(result_format, collect)
    gx_result = _run_gx(data, frame, loaded, gx_format, expectation_parameters)
    if pending is not None:  # the fingerprint's hashing ran beside GX
        data_info = {**pending.result(), "source": label}
    unexpected_rows = _collect_rows(gx_result, loaded) if collect else None
    _cut_lists(gx_result, full_result_list_limit)
    full_result = gx_result.to_json_dict()
    format_name = gx_format["result_format"] if isinstance(gx_format, Mapping) else str(gx_format)
    summary = build_summary(
        full_result,
        loaded,
        data_info,
        result_format=format_name,
        sample_size=sample_size,
        samples=samples,
        sample_key=sample_key,
        max_bytes=max_summary_bytes,
    )
    return ValidationOutcome(
        summary=summary,
        full_result=full_result,
        suite=loaded,
        frame=frame,
        unexpected_rows=unexpected_rows,
        rows=rows,
    )


def _prepare_query(source: SqlSource, suite: LoadedSuite, *, allow_empty: bool, check: str) -> dict[str, Any]:
    from airflow_integrity.validation.fingerprint import describe_fingerprint

    columns, has_rows = source.probe()
    if not allow_empty and not has_rows:
        raise EmptyDataError(
            f"{source.label()} returned no rows (columns: {', '.join(columns) or 'none'}). Pass "
            "allow_empty=True if an empty result is valid."
        )
    if check == "raise":
        _check_columns(suite, columns, label=source.label())
    return {**describe_fingerprint(source.describe()), "source": source.label()}


def _prepare_frame(
    frame: pd.DataFrame, suite: LoadedSuite, *, label: str, allow_empty: bool, check: str
) -> PendingFingerprint:
    from airflow_integrity.validation.fingerprint import start_frame_fingerprint

    columns = [str(c) for c in frame.columns]
    if len(frame) == 0 and not allow_empty:
        raise EmptyDataError(
            f"{label} has no rows (columns: {', '.join(columns) or 'none'}); every row-level expectation "
            "would pass on it without checking anything. Pass allow_empty=True if an empty hand-off is valid."
        )
    if check == "raise":
        _check_columns(suite, columns, label=label)
    return start_frame_fingerprint(frame, label=label)


def _run_gx(
    data: Any,
    frame: pd.DataFrame | None,
    suite: LoadedSuite,
    gx_format: Any,
    expectation_parameters: Mapping[str, Any] | None,
) -> Any:
    import pandas as pd

    from airflow_integrity.validation import gx_runtime

    with gx_runtime.run_lock():
        if frame is None:
            validator = gx_runtime.sql_validator(
                data.connection_string(),
                query=data.query,
                table=data.table,
                schema=data.schema,
                result_format=gx_format,
            )
        else:
            positional = frame  # row positions are what quarantine needs back from GX
            if not (isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1):
                positional = frame.reset_index(drop=True)
            validator = gx_runtime.frame_validator(positional, gx_format)
        # GX loads the batch here; the frame has its SHA-256 fingerprint already, GX need not hash it again.
        with gx_runtime.without_batch_hash():
            return validator.validate_expectation_suite(
                suite.gx_suite, dict(expectation_parameters) if expectation_parameters else None
            )


def _collect_rows(gx_result: Any, suite: LoadedSuite) -> dict[int, list[int]]:
    by_id = suite.by_id()
    rows: dict[int, list[int]] = {}
    for result in gx_result.results:
        info = by_id.get(str(result.expectation_config.id))
        if info is None or not info.row_level:
            continue
        positions = (result.result or {}).get("unexpected_index_list")
        if isinstance(positions, list):
            rows[info.index] = [int(p) for p in positions]
    return rows


def _cut_lists(gx_result: Any, limit: int) -> None:
    for result in gx_result.results:
        body = result.result or {}
        for key in _LIST_KEYS:
            values = body.get(key)
            if isinstance(values, list) and len(values) > limit:
                body[f"{key}_omitted"] = len(values) - limit
                body[key] = values[:limit]
