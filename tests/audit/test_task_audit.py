"""Task code and Airflow's own state changes leave events in the audit trail (real Airflow via ``dag.test()``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore, StoreLocation

pytestmark = pytest.mark.integration
DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


def _events(url: str) -> list[dict]:
    store = IntegrityStore(StoreLocation.from_url(url))
    with store.read() as conn:
        rows = conn.execute(
            text(
                "SELECT seq, event_type, actor, dag_id, run_id, task_id, business_key "
                "FROM integrity_audit_event ORDER BY seq"
            )
        ).mappings()
        return [dict(row) for row in rows]


def test_store_check_dag_run_is_audited_task_by_task(airflow_db, store_conn_env: str) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState

    dag = DagBag(dag_folder=str(DAGS_FOLDER)).get_dag("integrity_store_check")
    run = dag.test()
    assert run.state == DagRunState.SUCCESS
    events = [e for e in _events(store_conn_env) if e["run_id"] == run.run_id]
    by_task = {}
    for event in events:
        by_task.setdefault(event["task_id"], []).append(event["event_type"])
    for task_id in ("describe_store", "require_current_schema"):
        assert by_task[task_id][:1] == ["task_instance.running"]
        assert by_task[task_id][-1] == "task_instance.success"
    assert all(e["dag_id"] == "integrity_store_check" for e in events)
    assert all("@" in e["actor"] for e in events)
