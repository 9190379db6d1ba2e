"""Every example DAG parses, and runs to success with ``dag.test()`` against a real store."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore, StoreLocation
from tests.airflow_versions import dag_bag_module

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
pytestmark = pytest.mark.integration


def _dagbag():  # type: ignore[no-untyped-def]
    DagBag = dag_bag_module().DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_every_example_dag_parses_without_errors() -> None:
    bag = _dagbag()
    assert bag.import_errors == {}
    assert "integrity_store_check" in bag.dag_ids
    files = {Path(dag.fileloc).name for dag in bag.dags.values()}
    assert files == {p.name for p in DAGS_FOLDER.glob("*.py")}


def test_store_check_dag_reaches_the_configured_store(airflow_db, store_conn_env: str) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    dag = _dagbag().get_dag("integrity_store_check")
    run = dag.test()
    assert run.state == DagRunState.SUCCESS
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert {ti.state for ti in tis.values()} == {TaskInstanceState.SUCCESS}
    store = IntegrityStore(StoreLocation.from_url(store_conn_env))
    with store.read() as conn:
        store_id = conn.execute(text("SELECT store_id FROM integrity_store_info")).scalar_one()
    # The task migrated this very store (auto_migrate) and returned its identity.
    assert tis["require_current_schema"].xcom_pull(task_ids="require_current_schema") == store_id
