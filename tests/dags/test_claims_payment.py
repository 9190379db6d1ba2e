"""The claims_payment example against a real payments service (a separate process): paid exactly once."""

from __future__ import annotations

import pytest

from tests.dag_runs import load_example_dag
from tests.http_payments import payments_service
from tests.operators.support import idempotency_events

pytestmark = pytest.mark.integration


def test_two_runs_for_one_claim_pay_once_and_replay_the_response(
    airflow_db, store_conn_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    dag = load_example_dag("claims_payment")
    conf = {"claim_id": "4711", "amount": "980.00"}
    with payments_service() as service:
        monkeypatch.setenv("AIRFLOW_CONN_PAYMENTS_API", service.url)
        runs = [dag.test(run_conf=conf), dag.test(run_conf=conf)]
        stats = service.stats()

    assert [run.state for run in runs] == [DagRunState.SUCCESS, DagRunState.SUCCESS]
    # One HTTP call in all, carrying the key; it created one payment.
    assert [(r["path"], r["key"]) for r in stats["requests"]] == [("/payments", "claim-4711")]
    assert stats["created_by_key"] == {"claim-4711": 1}
    responses = [
        {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in run.get_task_instances()} for run in runs
    ]
    paid = responses[0]["pay_claim"]
    assert paid["status_code"] == 201
    assert paid["headers"]["Location"] == "/payments/pay-1"
    assert paid["json"] == {"payment_id": "pay-1", "request": {"claim_id": "4711", "amount": "980.00"}}
    assert responses[1]["pay_claim"] == paid  # replayed from the ledger, not from the service
    assert [r["confirm_payment"] for r in responses] == ["pay-1", "pay-1"]

    events = idempotency_events(store_conn_env, "claim-4711")
    assert [(e["event"], e["run_id"]) for e in events] == [
        ("claimed", runs[0].run_id),
        ("completed", runs[0].run_id),
        ("replayed", runs[1].run_id),
    ]
