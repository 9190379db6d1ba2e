"""Task code and Airflow's own state changes leave events in the audit trail (real Airflow via ``dag.test()``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_integrity.store import IntegrityStore, StoreLocation
from tests.airflow_versions import dag_bag_module

pytestmark = pytest.mark.integration
DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


def _records(url: str, **filters: str) -> list[dict]:
    """Stored events in chain order, read through the export reader (the table stores canonical bodies)."""
    from airflow_integrity.store.audit.export import iter_records

    store = IntegrityStore(StoreLocation.from_url(url))
    return [
        {"seq": seq, "event_type": r.event_type, "actor": r.actor, "dag_id": r.dag_id, "run_id": r.run_id,
         "task_id": r.task_id, "business_key": r.business_key}
        for seq, r in iter_records(store, **filters)
        if not isinstance(r, str)
    ]  # fmt: skip


@pytest.mark.requirement("part11.11.10e")
def test_store_check_dag_run_is_audited_task_by_task(airflow_db, store_conn_env: str) -> None:
    DagBag = dag_bag_module().DagBag
    from airflow.utils.state import DagRunState

    dag = DagBag(dag_folder=str(DAGS_FOLDER)).get_dag("integrity_store_check")
    run = dag.test()
    assert run.state == DagRunState.SUCCESS
    events = _records(store_conn_env, run_id=run.run_id)
    by_task = {}
    for event in events:
        by_task.setdefault(event["task_id"], []).append(event["event_type"])
    for task_id in ("describe_store", "require_current_schema"):
        assert by_task[task_id][:1] == ["task_instance.running"]
        assert by_task[task_id][-1] == "task_instance.success"
    assert all(e["dag_id"] == "integrity_store_check" for e in events)
    assert all("@" in e["actor"] for e in events)
