"""Idempotent triggering on a real cluster: duplicates from several processes at once make one Airflow run, the
official ``apache-airflow-client`` gets the same run back on a retry, and another body is refused."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import httpx
import pytest
from airflow_client.client.exceptions import UnprocessableEntityException

from tests.e2e.conftest import ClusterFactory, E2EPostgres

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
DAG_ID = "integrity_store_check"
ROUTE = f"/integrity/api/v1/dags/{DAG_ID}/dagRuns"


def _post(base_url: str, token: str, key: str, calls: int, out: Any) -> None:
    """One process: ``calls`` identical trigger calls at once from threads of its own."""
    from concurrent.futures import ThreadPoolExecutor

    def call(_: int) -> tuple[int, str, str]:
        with httpx.Client(base_url=base_url, timeout=120, trust_env=False) as client:
            response = client.post(
                ROUTE,
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                json={"logical_date": None, "conf": {"claim": key}},
            )
        body = response.json()
        return (
            response.status_code,
            body.get("dag_run_id", str(body)),
            response.headers.get("Idempotent-Replayed", ""),
        )

    with ThreadPoolExecutor(calls) as pool:
        for answer in pool.map(call, range(calls)):
            out.put(answer)


def _official_client_trigger(base_url: str, token: str, key: str, conf: dict[str, Any]) -> Any:
    """Trigger through the official client's transport and models (its request, its DAGRunResponse)."""
    from airflow_client.client import ApiClient, Configuration
    from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody

    with ApiClient(Configuration(host=base_url, access_token=token)) as api:
        request = api.param_serialize(
            method="POST",
            resource_path="/integrity/api/v1/dags/{dag_id}/dagRuns",
            path_params={"dag_id": DAG_ID},
            header_params={
                "Idempotency-Key": key,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            body=TriggerDAGRunPostBody(logical_date=None, conf=conf),
            auth_settings=["HTTPBearer"],
        )
        response = api.call_api(*request)
        response.read()
        return api.response_deserialize(response, {"200": "DAGRunResponse"})


def _header(response: Any, name: str) -> str | None:
    return {key.lower(): value for key, value in (response.headers or {}).items()}.get(name)


@pytest.mark.e2e
def test_duplicate_triggers_from_processes_and_the_official_client_make_one_run_each(
    airflow_cluster_factory: ClusterFactory, e2e_pg: E2EPostgres
) -> None:
    store_uri = e2e_pg.create_database("store")
    cluster = airflow_cluster_factory(DAGS_FOLDER, env={"AIRFLOW_CONN_INTEGRITY_DEFAULT": store_uri})
    with cluster:
        cluster.wait_for_dag(DAG_ID, timeout=120)
        token = cluster.token()
        context = multiprocessing.get_context("spawn")
        answers = context.Queue()
        workers = [
            context.Process(target=_post, args=(cluster.base_url, token, "claim-77", 3, answers)) for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=180)
        results = [answers.get(timeout=10) for _ in range(12)]

        first = _official_client_trigger(cluster.base_url, token, "claim-78", {"claim": "claim-78"})
        retried = _official_client_trigger(cluster.base_url, token, "claim-78", {"claim": "claim-78"})
        with pytest.raises(UnprocessableEntityException) as changed:
            _official_client_trigger(cluster.base_url, token, "claim-78", {"claim": "claim-79"})
        runs = cluster.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]

    assert [status for status, _, _ in results] == [200] * 12, results
    assert len({run_id for _, run_id, _ in results}) == 1, results
    assert sorted(replayed for _, _, replayed in results) == ["false"] + ["true"] * 11
    assert first.status_code == 200 and _header(first, "idempotent-replayed") == "false"
    assert retried.status_code == 200 and _header(retried, "idempotent-replayed") == "true"
    assert retried.data.dag_run_id == first.data.dag_run_id and retried.data.conf == {"claim": "claim-78"}
    refusal = json.loads(changed.value.body)["detail"]
    assert refusal["stored_fingerprint"] != refusal["request_fingerprint"], refusal
    # Airflow holds exactly one run per key.
    assert sorted(r["dag_run_id"] for r in runs) == sorted({results[0][1], first.data.dag_run_id}), runs
