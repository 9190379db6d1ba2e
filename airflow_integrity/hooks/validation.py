"""Validation for Airflow code: run a suite, keep the full result in the store, audit it, apply the policy.

Every validation leaves three traces: the full GX result in the integrity store (table
``integrity_validation_result``), one audit event (``validation.passed``, ``validation.warned`` when only
``warning``/``info`` expectations failed, or ``validation.failed``) attributed to the running task, and a
compact summary that names the stored result by ``result_id``. The event's details hold the suite's name and
fingerprint, the data's fingerprint, the result id, ``success`` and the counts, never the data.

The failure policies (``on_failure``) are shared by the operator, the TaskFlow decorator and the sensor:

``fail``
    a failed critical expectation fails the task (``AirflowFailException``, not retried), with the failures
    described in the message;
``warn``
    the task succeeds; the failure is logged as a warning and recorded in store and audit trail;
``quarantine``
    rows rejected by row-level critical expectations are written, as they came in and with a reasons column,
    to the quarantine location; the good rows flow on, as they came in (never rebuilt from the validated frame:
    see :mod:`airflow_integrity.validation.rows`). The task fails only when more than
    ``max_unexpected_fraction`` of the rows are bad, or when a failed expectation judges the table rather than
    rows (removing rows cannot fix it).
    The location is a folder from DAG code, or ``[integrity] quarantine_dir`` (default: ``quarantine`` under
    ``AIRFLOW_HOME``); each validation writes a new file there, named after DAG, run, task, map index, try and
    result, created exclusively (an existing file is never overwritten) and, on local disk, readable by the
    owner only.

Expectations of severity ``warning`` (or ``info``) never fail a task under any policy.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_integrity.hooks.data_sources import DataSource, storage_path
from airflow_integrity.hooks.events import build_event
from airflow_integrity.store import validation_results

if TYPE_CHECKING:
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.validation.quarantine import QuarantineSplit
    from airflow_integrity.validation.rows import TableRows
    from airflow_integrity.validation.run import ValidationOutcome

T = TypeVar("T")
EVENT_TYPES = {"passed": "validation.passed", "warned": "validation.warned", "failed": "validation.failed"}
QUARANTINE_EVENT = "validation.quarantined"
_IDENTITY = ("dag_id", "run_id", "task_id", "map_index", "try_number")


@dataclass
class ValidationRun:
    """One stored and audited validation.

    Args:
        summary: The compact summary (GX statistics, failed expectations with samples, data and suite
            fingerprints) plus ``status`` and ``result_id``; JSON-serialisable and bounded in size.
        outcome: The validation layer's outcome (frame, full result, row positions for quarantine).
    """

    summary: dict[str, Any]
    outcome: ValidationOutcome

    @property
    def result_id(self) -> str:
        """The id of the full result in the integrity store."""
        return str(self.summary["result_id"])

    @property
    def status(self) -> str:
        """``passed``, ``warned`` or ``failed``."""
        return str(self.summary["status"])

    @property
    def success(self) -> bool:
        """Whether no critical expectation failed."""
        return bool(self.summary["success"])

    def describe(self) -> str:
        """A readable account of the result for logs and exception messages."""
        return f"{self.outcome.describe_failures()}\nFull result: validation result {self.result_id}."


@dataclass
class Handoff:
    """What a policy lets flow on.

    Args:
        run: The validation.
        good: The rows that flow on (quarantine only; all rows are good under the other policies), as they came
            in (:meth:`~airflow_integrity.validation.rows.TableRows.hand_on`): the original record objects of a
            list of records, the values of a dict of columns, the rows of a DataFrame (``iloc``), JSON text of
            the selected records' own text, a CSV file's cell text, an SQL driver's values.
        quarantine: Account of the quarantine split and where the bad rows went (quarantine only).
    """

    run: ValidationRun
    good: Any = None
    quarantine: dict[str, Any] | None = None


def fail_on_bad_input(action: Callable[[], T]) -> T:
    """Run ``action``; a bad suite or bad data becomes ``AirflowFailException`` (retrying cannot help).

    ``SourceUnavailableError`` (a database or endpoint that is down) passes through, so Airflow retries it.
    """
    from airflow_integrity.compat import AirflowFailException
    from airflow_integrity.validation.errors import DataError, SuiteError

    try:
        return action()
    except (SuiteError, DataError) as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def status_of(summary: Mapping[str, Any]) -> str:
    """``failed`` if a critical expectation failed, ``warned`` if only others did, else ``passed``."""
    if not summary["success"]:
        return "failed"
    return "warned" if any(summary.get("failed_by_severity", {}).values()) else "passed"


def validate_and_record(
    hook: IntegrityCheckHook,
    data: Any,
    suite: Any,
    *,
    source: DataSource | None = None,
    label: str = "data",
    on_failure: str = "fail",
    collect_unexpected_rows: bool = False,
    business_key: str | None = None,
    task_instance: Any = None,
    **options: Any,
) -> ValidationRun:
    """Validate, store the full result and record the audit event.

    Args:
        hook: The integrity hook (store and audit trail).
        data: The data (ignored when ``source`` is given): a DataFrame, records, JSON, a path, an ``SqlSource``.
        suite: Any suite reference.
        source: A file, SQL or HTTP source to load the data from.
        label: How errors name in-memory data, e.g. ``"return value of task 'register'"``.
        on_failure: The policy, recorded in the audit event.
        collect_unexpected_rows: Keep rejected row positions (needed for quarantine).
        business_key: Business key of the audit event, e.g. ``"intake-2024-06-01"``.
        task_instance: The task instance the event is attributed to (default: the running task).
        options: Further arguments of :func:`airflow_integrity.validation.validate` (``expectation_parameters``,
            ``context_dir``, ``allow_empty``, ``samples``, ...). With ``samples="hashed"`` the sample values are
            fingerprinted with the store's secret salt (``validation_results.sample_key``).

    Raises:
        SuiteError, DataError: Bad suite or data (not retryable). SourceUnavailableError: the source is down.
        AuditUnavailableError: The store cannot record the event and the policy forbids running unaudited.
    """
    from airflow_integrity.validation.run import validate

    if source is not None:
        data = source.load()
        if source.kind == "path":
            options.setdefault("file_format", source.file_format)
            options.setdefault("read_options", source.read_options)
            label = "data"  # the validation names the file itself
        else:
            label = source.label()
    if options.get("samples") == "hashed" and not options.get("sample_key"):
        options["sample_key"] = validation_results.sample_key(hook.get_store())
    outcome = validate(data, suite, collect_unexpected_rows=collect_unexpected_rows, label=label, **options)
    status = status_of(outcome.summary)
    result_id = str(uuid.uuid4())
    summary = {**outcome.summary, "status": status, "result_id": result_id}
    stats = summary["statistics"]
    event = build_event(
        EVENT_TYPES[status],
        task_instance=task_instance,
        business_key=business_key,
        details={
            "suite": summary["suite"]["name"],
            "suite_fingerprint": summary["suite"]["fingerprint"],
            "data_fingerprint": summary["data"].get("fingerprint"),
            "data_kind": summary["data"].get("kind"),
            "rows": summary["data"].get("rows"),
            "result_id": result_id,
            "success": summary["success"],
            "on_failure": on_failure,
            "evaluated_expectations": stats.get("evaluated_expectations"),
            "unsuccessful_expectations": stats.get("unsuccessful_expectations"),
            "failed_by_severity": summary["failed_by_severity"],
        },
    )
    validation_results.save(
        hook.get_store(),
        summary=summary,
        full_result=outcome.full_result,
        status=status,
        identity={key: getattr(event, key) for key in _IDENTITY},
        result_id=result_id,
    )
    hook.record_event(event)
    return ValidationRun(summary=summary, outcome=outcome)


def enforce(
    hook: IntegrityCheckHook,
    run: ValidationRun,
    *,
    on_failure: str,
    quarantine_path: Any = None,
    quarantine_format: str | None = None,
    max_unexpected_fraction: float = 0.0,
    quarantine_warnings: bool = False,
    business_key: str | None = None,
    task_instance: Any = None,
) -> Handoff:
    """Apply ``on_failure`` to a validation: log it, and fail, warn or quarantine.

    Raises:
        AirflowFailException: ``fail`` and a critical expectation failed; ``quarantine`` and too many rows are
            bad, or a table-level critical expectation failed.
    """
    from airflow_integrity.compat import AirflowFailException

    log = hook.log
    if run.status == "passed":
        log.info("Validation passed: %s", run.describe().splitlines()[0])
    elif run.status == "warned":
        log.warning("Validation passed with warnings (they never fail the task):\n%s", run.describe())
    if on_failure == "quarantine":
        return _quarantine(
            hook,
            run,
            quarantine_path=quarantine_path,
            quarantine_format=quarantine_format,
            max_unexpected_fraction=max_unexpected_fraction,
            include_warnings=quarantine_warnings,
            business_key=business_key,
            task_instance=task_instance,
        )
    if run.success:
        return Handoff(run=run)
    if on_failure == "warn":
        log.warning(
            "VALIDATION FAILED; on_failure='warn' lets the task succeed. Recorded in the integrity store and "
            "the audit trail:\n%s",
            run.describe(),
        )
        return Handoff(run=run)
    raise AirflowFailException(f"Validation failed.\n{run.describe()}")


def _quarantine(
    hook: IntegrityCheckHook,
    run: ValidationRun,
    *,
    quarantine_path: Any,
    quarantine_format: str | None,
    max_unexpected_fraction: float,
    include_warnings: bool,
    business_key: str | None,
    task_instance: Any,
) -> Handoff:
    from airflow_integrity.compat import AirflowFailException
    from airflow_integrity.validation.quarantine import split_rows

    rows = run.outcome.rows
    if rows is None:
        raise ValueError("Quarantine needs the validated rows: validate with collect_unexpected_rows=True.")
    split = split_rows(run.outcome, include_warnings=include_warnings)
    account: dict[str, Any] = {**split.summary(), "path": None}
    if len(split.bad):
        target = quarantine_target(quarantine_path, quarantine_format, _file_stem(run))
        payload = quarantined_bytes(rows, split, (quarantine_format or "csv").lower().lstrip("."))
        write_new_file(target, payload)
        account["path"] = str(target)
        from airflow_integrity.store.audit.event import tagged_sha256

        hook.record_event(
            build_event(
                QUARANTINE_EVENT,
                task_instance=task_instance,
                business_key=business_key,
                details={
                    "result_id": run.result_id,
                    "location": str(target),
                    "file_fingerprint": tagged_sha256(payload),
                    "bad_rows": len(split.bad),
                    "good_rows": len(split.good),
                    "bad_fraction": split.bad_fraction,
                },
            )
        )
        hook.log.warning(
            "Quarantined %d of %d rows to %s; %d rows flow on.\n%s",
            len(split.bad),
            split.total_rows,
            target,
            len(split.good),
            run.describe(),
        )
    if split.unsplittable:
        checks = ", ".join(f"#{f['index']} {f['type']}" for f in split.unsplittable[:5])
        raise AirflowFailException(
            f"Validation failed on expectations that judge the data as a whole ({checks}); quarantining rows "
            f"cannot fix that.\n{run.describe()}"
        )
    if split.bad_fraction > max_unexpected_fraction:
        raise AirflowFailException(
            f"{len(split.bad)} of {split.total_rows} rows ({split.bad_fraction:.1%}) failed validation, more than "
            f"max_unexpected_fraction={max_unexpected_fraction}; they are in {account['path']}.\n{run.describe()}"
        )
    return Handoff(run=run, good=rows.hand_on(split.good_positions), quarantine=account)


@dataclass(frozen=True)
class XcomChange:
    """A value handed on that Airflow's XCom would change: where it is, what it is and what would arrive."""

    row: int
    column: str
    value: Any
    arrives: Any

    def __str__(self) -> str:
        return (
            f"row {self.row}, column {self.column!r}: {self.value!r} would reach downstream tasks as "
            f"{self.arrives!r}"
        )


def xcom_change(rows: Any) -> XcomChange | None:
    """The first value of ``rows`` that would not reach a downstream task as it is, or ``None``.

    Airflow's XCom serialisation stores a ``Decimal`` with a fraction as a float: one that a float cannot hold
    (``Decimal('12345678901234567.89')``, from a ``NUMERIC`` column) would arrive as another number. Records and
    columns are searched (JSON text and a file's cell text hold no ``Decimal``).
    """
    if isinstance(rows, Mapping):  # columns
        for column, values in rows.items():
            for position, value in enumerate(values if isinstance(values, (list, tuple)) else ()):
                if (arrives := _through_float(value)) is not None:
                    return XcomChange(position, str(column), value, arrives)
    elif isinstance(rows, (list, tuple)):
        for position, record in enumerate(rows):
            for column, value in record.items() if isinstance(record, Mapping) else ():
                if (arrives := _through_float(value)) is not None:
                    return XcomChange(position, str(column), value, arrives)
    return None


def _through_float(value: Any) -> Any:
    """What XCom makes of a ``Decimal`` it would change (``None``: it arrives as the same number)."""
    import decimal

    if not isinstance(value, decimal.Decimal) or not value.is_finite():
        return None
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:  # XCom keeps it as an int
        return None
    arrives = decimal.Decimal(str(float(value)))
    return None if arrives == value else arrives


def _file_stem(run: ValidationRun) -> str:
    from airflow_integrity.identity import task_instance_identity

    try:
        from airflow.sdk import get_current_context

        identity = task_instance_identity(get_current_context()["ti"])
    except Exception:  # outside a running task
        identity = {}
    parts = [identity.get("dag_id"), identity.get("task_id"), identity.get("run_id")]
    if not all(parts):
        return f"validation-{run.result_id}"
    map_index = identity.get("map_index")
    if map_index is not None and map_index >= 0:
        parts.append(f"map{identity['map_index']}")
    parts += [f"try{identity.get('try_number')}", run.result_id[:8]]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join(str(p) for p in parts))


def default_quarantine_dir() -> str:
    """``[integrity] quarantine_dir``, or ``quarantine`` under ``AIRFLOW_HOME`` when it is not set."""
    from airflow_integrity.settings import airflow_home, load_settings

    return load_settings().quarantine_dir or str(airflow_home() / "quarantine")


def quarantine_target(location: Any, file_format: str | None, stem: str) -> Any:
    """The new file ``<stem>.<format>`` in the quarantine folder ``location`` (``None`` or empty: the default).

    Raises:
        ValueError: ``location`` names a file, or the format is unknown.
    """
    from airflow_integrity.validation.quarantine import check_quarantine_arguments

    if location is None or (isinstance(location, str) and not location.strip()):
        location = default_quarantine_dir()
    check_quarantine_arguments(location, file_format)
    folder = storage_path(location.strip()) if isinstance(location, str) else location
    return folder / f"{stem}.{(file_format or 'csv').lower().lstrip('.')}"


def quarantined_bytes(rows: TableRows, split: QuarantineSplit, file_format: str) -> bytes:
    """The bad rows of ``split`` as they came in, each with its reasons, as ``csv``, ``jsonl`` or ``parquet``
    (see :meth:`~airflow_integrity.validation.rows.TableRows.to_file`)."""
    from airflow_integrity.validation.quarantine import REASONS_COLUMN

    reasons = [split.reason_of(position) for position in split.bad_positions]
    return rows.to_file(split.bad_positions, file_format, REASONS_COLUMN, reasons)


def write_new_file(target: Any, payload: bytes) -> None:
    """Create ``target`` (a local path or an object-store path) with ``payload``; never replace a file.

    A local file is created exclusively (``O_EXCL``) and readable by its owner only, in folders created
    owner-only; in object storage the file must not exist (exclusive create where the store supports it).

    Raises:
        FileExistsError: ``target`` exists already, naming it.
    """
    import os

    exists = f"Quarantine file {target} already exists; quarantine files are never overwritten."
    if isinstance(target, Path):
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise FileExistsError(exists) from None
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
        return
    with contextlib.suppress(FileExistsError, NotImplementedError):  # object stores without directories
        target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise FileExistsError(exists)
    try:
        handle = target.open("xb")
    except FileExistsError:
        raise FileExistsError(exists) from None
    except (ValueError, NotImplementedError):  # a store without exclusive create: checked just above
        handle = target.open("wb")
    with handle:
        handle.write(payload)
