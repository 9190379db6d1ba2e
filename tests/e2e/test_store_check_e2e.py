"""The example DAG, triggered over REST on a real cluster, reaches the PostgreSQL store and is audited; and
``airflow db clean`` purges Airflow's records of it and leaves the trail exactly as it was."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.verify import verify
from tests.e2e.conftest import ClusterFactory, E2EPostgres

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
DAG_ID = "integrity_store_check"


@pytest.mark.requirement("part11.11.10c")
@pytest.mark.e2e
def test_example_dag_over_rest_reaches_the_store_and_leaves_its_trail(
    airflow_cluster_factory: ClusterFactory, e2e_pg: E2EPostgres
) -> None:
    store_uri = e2e_pg.create_database("store")
    cluster = airflow_cluster_factory(DAGS_FOLDER, env={"AIRFLOW_CONN_INTEGRITY_DEFAULT": store_uri})
    with cluster:
        cluster.wait_for_dag(DAG_ID, timeout=120)
        run_id = cluster.trigger(DAG_ID, conf={"requested_by": "e2e"})
        state = cluster.wait_for_run(DAG_ID, run_id, timeout=180)
        tis = cluster.task_instances(DAG_ID, run_id)
        assert state == "success", f"{tis}\n{cluster.logs_tail()}"
        assert {ti["state"] for ti in tis} == {"success"}
        returned = cluster.returned(DAG_ID, run_id, "require_current_schema")
        health = cluster.api("GET", "/integrity/api/v1/health")

        # Airflow's retention: purge everything recorded before tomorrow (manual runs included).
        store = IntegrityStore(StoreLocation.from_url(store_uri))
        before = _settled_snapshot(store)
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        cleaned = cluster.airflow_cli(
            "db", "clean", "--clean-before-timestamp", tomorrow, "--yes", "--skip-archive"
        )
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
        purged = cluster.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}").status_code
        after = _snapshot(store)

    # Airflow forgot the run; the trail did not change by one row, and still tells the run's story (below).
    assert purged == 404
    assert after == before and before["integrity_audit_event"][0] > 0

    with store.read() as conn:
        store_id = conn.execute(text("SELECT store_id FROM integrity_store_info")).scalar_one()
    records = [r for _, r in iter_records(store, run_id=run_id) if not isinstance(r, str)]
    events = [(r.event_type, r.task_id, r.actor) for r in records]
    assert verify(store).ok
    # The worker returned the identity of the very store the test created, and the API server sees it too.
    assert returned == store_id
    assert health["store"]["store_id"] == store_id and health["store"]["backend"] == "postgresql"
    # Every task-instance state change Airflow recorded has its event, from the worker that ran it.
    for ti in tis:
        kinds = [kind for kind, task_id, _ in events if task_id == ti["task_id"]]
        assert kinds == ["task_instance.running", "task_instance.success"], events
        actors = {actor for _, task_id, actor in events if task_id == ti["task_id"]}
        assert all(actor.startswith("worker@") for actor in actors), events
    assert any(kind == "dag_run.success" and actor.startswith("scheduler@") for kind, _, actor in events), events
    # Run events name how the run was made and the DAG version it was created from, as the task events do.
    run_events = [r for r in records if r.event_type.startswith("dag_run.")]
    task_versions = {r.dag_version for r in records if r.task_id}
    assert run_events and all(r.details["run_type"] == "manual" for r in run_events), run_events
    assert {r.dag_version for r in run_events} == task_versions and None not in task_versions, records


def _settled_snapshot(store: IntegrityStore) -> dict[str, tuple[int, str]]:
    """The snapshot once the components have finished recording the runs (unchanged over 3 s)."""
    previous = _snapshot(store)
    for _ in range(20):
        time.sleep(3)
        current = _snapshot(store)
        if current == previous:
            return current
        previous = current
    raise AssertionError("the store never stopped changing")


def _snapshot(store: IntegrityStore) -> dict[str, tuple[int, str]]:
    """Every table of the store: its row count and a digest of all its rows."""
    snapshot = {}
    with store.read() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY 1")).all()
            digest = hashlib.sha256(repr([tuple(map(str, row)) for row in rows]).encode()).hexdigest()
            snapshot[table] = (len(rows), digest)
    return snapshot
