"""A DAG's error budgets and error figures: what its checks measured, and the counters of its trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status

from airflow_integrity.plugin.api.access import AccessDep
from airflow_integrity.plugin.api.models import ErrorBudgetReport
from airflow_integrity.plugin.api.params import NO_NUL
from airflow_integrity.plugin.api.store import open_store

router = APIRouter(tags=["Error budgets"])
MEASURED = "error_budget.measured"


@router.get(
    "/dags/{dag_id}/errorBudgets", response_model=ErrorBudgetReport, summary="A DAG's error budgets and figures"
)
def error_budgets(
    access: AccessDep,
    dag_id: Annotated[str, Path(max_length=250, pattern=NO_NUL)],
    since: Annotated[datetime | None, Query(description="Count from here (default: 30 days ago).")] = None,
) -> dict[str, Any]:
    """The newest figure of each budget the DAG's checks recorded, and the DAG's counters per task since
    ``since`` (the same as ``airflow integrity report``)."""
    from airflow_integrity.hooks.error_budgets import counters_json, task_figures
    from airflow_integrity.store.audit.query import EventFilter, stream

    access.require_read(dag_id)
    until = datetime.now(UTC)
    start = since or until - timedelta(days=30)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if start >= until:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"since {start.isoformat()} is not in the past."
        )
    with open_store() as store:
        newest: dict[str, dict[str, Any]] = {}
        for row in stream(store, EventFilter(dag_id=dag_id, event_type=MEASURED)):
            record = row.record
            if record is not None and isinstance(record.details.get("name"), str):
                newest[record.details["name"]] = {**record.details, "measured_at": record.recorded_at.isoformat()}
        counters = task_figures(store, dag_id, start, until)
    return {
        "dag_id": dag_id,
        "since": start.isoformat(),
        "until": until.isoformat(),
        "budgets": [newest[name] for name in sorted(newest)],
        "tasks": counters_json(counters),
    }
