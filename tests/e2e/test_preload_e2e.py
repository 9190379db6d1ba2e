"""Under the LocalExecutor the scheduler loads GX and the task modules once; every task process inherits them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import ClusterFactory, E2EPostgres

DAGS_FOLDER = Path(__file__).resolve().parent / "dags_preload"
DAG_ID = "preloaded_validation"


@pytest.mark.e2e
def test_task_processes_start_with_great_expectations_loaded_by_the_scheduler(
    airflow_cluster_factory: ClusterFactory, e2e_pg: E2EPostgres
) -> None:
    store_uri = e2e_pg.create_database("store")
    cluster = airflow_cluster_factory(DAGS_FOLDER, env={"AIRFLOW_CONN_INTEGRITY_DEFAULT": store_uri})
    with cluster:
        cluster.wait_for_dag(DAG_ID, timeout=120)
        run_id = cluster.trigger(DAG_ID)
        state = cluster.wait_for_run(DAG_ID, run_id, timeout=180)
        tis = {ti["task_id"]: ti for ti in cluster.task_instances(DAG_ID, run_id)}
        loaded = cluster.returned(DAG_ID, run_id, "loaded_before_the_task")
        logs = cluster.logs_tail()
    scheduler_log = cluster.component_log("scheduler")

    assert state == "success", f"{tis}\n{logs}"
    assert {ti["state"] for ti in tis.values()} == {"success"}
    # The task's process was forked with GX (and pandas, which GX imports) and the package's hooks loaded.
    assert loaded == dict.fromkeys(
        (
            "great_expectations",
            "pandas",
            "airflow_integrity.hooks.integrity",
            "airflow_integrity.hooks.idempotency",
        ),
        True,
    )
    assert "Great Expectations in" in scheduler_log
