"""Full validation results in the integrity store: written once, read back by the id a summary carries.

A summary (small, in XCom and in the audit event) names its full result by ``result_id``; the full result
(every expectation's GX result) lives only here. Rows cannot be changed or deleted (database triggers).

The store also keeps the secret salt that keys the fingerprints of sampled values (``samples="hashed"``):
random per store, created by migration ``v2``, never changed, and read only by :func:`sample_key`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError

from airflow_integrity.store.errors import StoreError
from airflow_integrity.store.read_once import read_once
from airflow_integrity.store.scope import bind_scope, scope_clause
from airflow_integrity.store.store import IntegrityStore

TABLE = "integrity_validation_result"
SECRET_TABLE = "integrity_validation_secret"
STATUSES = ("passed", "warned", "failed")
# What a listing reads (:func:`_result`'s order), and every column.
_LISTED = (
    "result_id, created_at, status, success, suite_name, suite_fingerprint, data_fingerprint, dag_id, run_id, "
    "task_id, map_index, try_number, summary"
)
_COLUMNS = f"{_LISTED}, full_result, full_result_sha256"
_IDENTITY = ("dag_id", "run_id", "task_id", "map_index", "try_number")


class StoredValidationResult(msgspec.Struct, frozen=True, dict=True):
    """One stored validation.

    Args:
        result_id: The id the summary and the audit event name.
        created_at: When it was stored (UTC).
        status: ``passed``, ``warned`` (only warning/info expectations failed) or ``failed``.
        success: Whether no critical expectation failed.
        suite_name: The suite's name.
        suite_fingerprint: ``sha256:`` of the suite's expectations.
        data_fingerprint: ``sha256:`` of the data (or of the query, for SQL validated in the database).
        dag_id, run_id, task_id, map_index, try_number: The task instance that ran it (``None`` outside a task).
        summary_json: The compact summary as stored (JSON text); :attr:`summary` reads it when first asked for.
        full_result: GX's complete result as a JSON dict.
    """

    result_id: str
    created_at: datetime
    status: str
    success: bool
    suite_name: str
    suite_fingerprint: str
    data_fingerprint: str | None
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    map_index: int | None
    try_number: int | None
    summary_json: str
    full_result: dict[str, Any]

    @property
    def identity(self) -> dict[str, Any]:
        """The task instance that ran it, by the names it has (empty outside a task)."""
        return {key: value for key in _IDENTITY if (value := getattr(self, key)) is not None}

    @property
    def figures(self) -> dict[str, Any]:
        """What a listing shows of the summary: ``rows`` (validated), ``evaluated_expectations``,
        ``unsuccessful_expectations`` and ``failures``; read alone, without the rest of the summary."""
        if "summary" not in self.__dict__:  # not read yet
            try:
                figures = _decode_figures(self.summary_json)
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass  # NaN, or a shape of its own: read from the whole summary
            else:
                data, statistics = figures.data or _Data(), figures.statistics or _Statistics()
                return {
                    "rows": data.rows,
                    "evaluated_expectations": statistics.evaluated_expectations,
                    "unsuccessful_expectations": statistics.unsuccessful_expectations,
                    "failures": figures.failures or [],
                }
        summary = self.summary if isinstance(self.summary, dict) else {}
        read = {
            key: value if isinstance(value := summary.get(key), dict) else {} for key in ("data", "statistics")
        }
        return {
            "rows": read["data"].get("rows"),
            "evaluated_expectations": read["statistics"].get("evaluated_expectations"),
            "unsuccessful_expectations": read["statistics"].get("unsuccessful_expectations"),
            "failures": failures if isinstance(failures := summary.get("failures"), list) else [],
        }

    @read_once
    def summary(self) -> dict[str, Any]:
        """The compact summary (read when first asked for)."""
        return _read_summary(self.summary_json)


def _json(value: Any) -> str:
    # Text, not a JSON column: GX results may hold NaN (e.g. the mean of no values), which Python's JSON keeps.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def save(
    store: IntegrityStore,
    *,
    summary: Mapping[str, Any],
    full_result: Mapping[str, Any],
    status: str,
    identity: Mapping[str, Any] | None = None,
    result_id: str | None = None,
) -> str:
    """Store a validation's summary and full result; return its ``result_id``.

    Args:
        store: A migrated integrity store.
        summary: The compact summary (``success``, ``suite``, ``data`` with ``fingerprint``).
        full_result: GX's complete result as a JSON dict.
        status: ``passed``, ``warned`` or ``failed``.
        identity: The task instance's ``dag_id``, ``run_id``, ``task_id``, ``map_index``, ``try_number``.
        result_id: A UUID to store it under (generated when omitted).

    Raises:
        StoreError: An unknown status.
        StoreUnavailableError: The store cannot be reached.
    """
    if status not in STATUSES:
        raise StoreError(f"Validation status {status!r} is not one of {', '.join(STATUSES)}.")
    result_id = result_id or str(uuid.uuid4())
    full_text = _json(full_result)
    who = {key: (identity or {}).get(key) for key in _IDENTITY}
    suite = summary.get("suite") or {}
    row = {
        "result_id": result_id,
        "created_at": datetime.now(UTC),
        "status": status,
        "success": bool(summary.get("success")),
        "suite_name": str(suite.get("name", ""))[:250],
        "suite_fingerprint": str(suite.get("fingerprint", "")),
        "data_fingerprint": (summary.get("data") or {}).get("fingerprint"),
        **who,
        "summary": _json(summary),
        "full_result": full_text,
        "full_result_sha256": hashlib.sha256(full_text.encode()).hexdigest(),
    }
    placeholders = ", ".join(f":{name.strip()}" for name in _COLUMNS.split(","))
    with store.begin() as conn:
        conn.execute(text(f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES ({placeholders})"), row)
    return result_id


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite returns the stored text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_decode_summary = msgspec.json.Decoder(dict[str, Any]).decode


class _Data(msgspec.Struct, gc=False):
    rows: Any = None


class _Statistics(msgspec.Struct, gc=False):
    evaluated_expectations: Any = None
    unsuccessful_expectations: Any = None


class _Figures(msgspec.Struct):
    data: _Data | None = None
    statistics: _Statistics | None = None
    failures: list[Any] | None = None


_decode_figures = msgspec.json.Decoder(_Figures).decode


def _read_summary(text: str) -> dict[str, Any]:
    # msgspec reads strict JSON fast; a summary holding NaN (Python's JSON extension) takes json's slower path.
    try:
        return _decode_summary(text)
    except msgspec.DecodeError:
        return json.loads(text)


def _result(row: Any, full_result: dict[str, Any]) -> StoredValidationResult:
    """A row whose first columns are :data:`_LISTED`'s, as a :class:`StoredValidationResult`."""
    (result_id, created_at, status, success, suite, suite_fingerprint, data_fingerprint) = row[:7]
    dag_id, run_id, task_id, map_index, try_number, summary = row[7:13]
    return StoredValidationResult(
        result_id,
        _aware(created_at),
        status,
        bool(success),
        suite,
        suite_fingerprint,
        data_fingerprint,
        dag_id,
        run_id,
        task_id,
        map_index,
        try_number,
        summary,
        full_result,
    )


def get(store: IntegrityStore, result_id: str) -> StoredValidationResult | None:
    """The stored validation ``result_id``, or ``None`` when there is none.

    Raises:
        StoreError: The stored full result does not match its recorded SHA-256 (altered outside the store).
    """
    with store.read() as conn:
        row = conn.execute(
            text(f"SELECT {_COLUMNS} FROM {TABLE} WHERE result_id = :id"), {"id": result_id}
        ).first()
    if row is None:
        return None
    if hashlib.sha256(row.full_result.encode()).hexdigest() != row.full_result_sha256:
        raise StoreError(
            f"Validation result {result_id}: the stored full result does not match its SHA-256; it was altered "
            "outside airflow-integrity. Check the database's access log."
        )
    return _result(row, json.loads(row.full_result))


def sample_key(store: IntegrityStore) -> bytes:
    """The store's secret key for HMAC-SHA256 fingerprints of sampled values (``samples="hashed"``).

    32 random bytes created once per store by migration ``v2``; the same in every process that uses the store,
    different in every other store. Keep it out of anything a task returns or logs.

    Raises:
        StoreError: The store has no salt (its schema predates revision v2: run ``airflow integrity db migrate``).
        StoreUnavailableError: The store cannot be reached.
    """
    try:
        with store.read() as conn, conn.begin_nested():
            salt = conn.execute(text(f"SELECT sample_salt FROM {SECRET_TABLE} WHERE id = 1")).scalar_one_or_none()
    except (OperationalError, ProgrammingError) as exc:
        if getattr(exc.orig, "sqlstate", None) != "42P01" and "no such table" not in str(exc.orig):
            raise
        salt = None
    if not salt:
        raise StoreError(
            f"The integrity store {store.location.display} has no validation sample salt (schema revision "
            "before v2). Run `airflow integrity db migrate`."
        )
    return bytes.fromhex(salt)


@dataclass(frozen=True)
class ValidationFilter:
    """Which stored validations to list.

    Args:
        dag_id, run_id, task_id, map_index, try_number: The task instance (or a part of it) that ran them.
        status: ``passed``, ``warned`` or ``failed``.
        readable_dags: Only validations of these DAGs (``None``: of every DAG).
        without_dag: Whether validations run outside any DAG are included.
    """

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    status: str | None = None
    readable_dags: frozenset[str] | None = None
    without_dag: bool = True


def list_results(
    store: IntegrityStore,
    where: ValidationFilter,
    *,
    before: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[StoredValidationResult]:
    """A page of stored validations, newest first (their full results are not read: ``full_result`` is ``{}``).

    Args:
        store: A migrated integrity store.
        where: The filter.
        before: The cursor: ``(created_at, result_id)`` of the last validation of the previous page.
        limit: At most this many (1 to 500).
    """
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for name in (*_IDENTITY, "status"):
        value = getattr(where, name)
        if value is not None:
            clauses.append(f"{name} = :{name}")
            params[name] = value
    if (scope := scope_clause("dag_id", where.readable_dags, where.without_dag, params)) is not None:
        clauses.append(scope)
    if before is not None:
        clauses.append("(created_at < :before_at OR (created_at = :before_at AND result_id < :before_id))")
        params["before_at"], params["before_id"] = before
    sql = f"SELECT {_LISTED} FROM {TABLE}"
    if clauses:
        sql += f" WHERE {' AND '.join(clauses)}"
    sql += f" ORDER BY created_at DESC, result_id DESC LIMIT {max(1, min(int(limit), 500))}"
    rows = store.reading(lambda reads: reads.all(bind_scope(text(sql), params), params))
    return [_result(row, {}) for row in rows]
