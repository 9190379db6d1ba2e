"""Validations: per DAG run and task instance, with their failed expectations and the full stored result."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status

from airflow_integrity.plugin.api.access import AccessDep
from airflow_integrity.plugin.api.models import ValidationDetail, ValidationPage
from airflow_integrity.plugin.api.params import Cursor, Limit
from airflow_integrity.plugin.api.params import Name as Text
from airflow_integrity.plugin.api.store import bad_cursor, open_store

router = APIRouter(tags=["Validations"])
QUARANTINE_EVENT = "validation.quarantined"


def _cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    moment, _, result_id = cursor.partition("|")
    try:
        when = datetime.fromisoformat(moment)
    except ValueError:
        raise bad_cursor(cursor) from None
    if not result_id or len(result_id) > 36:
        raise bad_cursor(cursor)
    return when, result_id


def _quarantined(store: Any, results: list[Any]) -> set[str]:
    """The ids among ``results`` whose rejected rows were quarantined (from their runs' audit events)."""
    from airflow_integrity.store.audit import query

    runs = {(r.dag_id, r.run_id) for r in results}
    known = {(dag_id, run_id) for dag_id, run_id in runs if dag_id is not None and run_id is not None}
    return {
        str(result_id)
        for row in query.of_runs(store, known, QUARANTINE_EVENT)
        if row.record is not None and (result_id := row.record.details.get("result_id"))
    }


def validation_json(result: Any, quarantined: bool) -> dict[str, Any]:
    """The API form of a :class:`~airflow_integrity.store.validation_results.StoredValidationResult`."""
    return {
        "result_id": result.result_id,
        "created_at": result.created_at.isoformat(),
        "status": result.status,
        "quarantined": quarantined,
        "success": result.success,
        "suite": result.suite_name,
        "suite_fingerprint": result.suite_fingerprint,
        "data_fingerprint": result.data_fingerprint,
        **result.figures,
        **{name: getattr(result, name) for name in ("dag_id", "run_id", "task_id", "map_index", "try_number")},
    }


@router.get("/validations", response_model=ValidationPage, summary="Validations, newest first")
def list_validations(
    access: AccessDep,
    dag_id: Text = None,
    run_id: Text = None,
    task_id: Text = None,
    map_index: Annotated[int | None, Query(ge=-1, le=2**31 - 1)] = None,
    try_number: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    status_: Annotated[Literal["passed", "warned", "failed"] | None, Query(alias="status")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Stored validations the user may read, newest first: a run's (``dag_id`` + ``run_id``), a task
    instance's (+ ``task_id``, ``map_index``, ``try_number``), or all."""
    from airflow_integrity.store import validation_results

    if dag_id is not None:
        access.require_read(dag_id)
    where = validation_results.ValidationFilter(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        try_number=try_number,
        status=status_,
        readable_dags=access.readable_dags(),
        without_dag=access.store_wide_read,
    )
    with open_store() as store:
        results = validation_results.list_results(store, where, before=_cursor(cursor), limit=limit)
        quarantined = _quarantined(store, results)
    last = results[-1] if len(results) == limit else None
    return {
        "validations": [validation_json(r, r.result_id in quarantined) for r in results],
        "next_cursor": f"{last.created_at.isoformat()}|{last.result_id}" if last else None,
    }


@router.get("/validations/{result_id}", response_model=ValidationDetail, summary="One validation, in full")
def get_validation(access: AccessDep, result_id: Annotated[str, Path(max_length=36)]) -> dict[str, Any]:
    """A validation's summary and the complete Great Expectations result stored for it (checked against its
    SHA-256; a result altered in the database is 503 naming the result)."""
    from airflow_integrity.store import validation_results

    with open_store() as store:
        result = validation_results.get(store, result_id)
        if result is None or not access.may_read(result.dag_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No validation {result_id!r} that you may read.")
        quarantined = _quarantined(store, [result])
    return {
        **validation_json(result, result.result_id in quarantined),
        "summary": result.summary,
        "full_result": result.full_result,
    }
