"""IdempotentHttpOperator after a 2xx whose check fails: the request was sent, so no retry sends it again."""

from __future__ import annotations

import pytest

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.ledger.entries import State
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from tests.dag_runs import load_fixture_dag
from tests.http_payments import payments_service
from tests.operators.support import idempotency_events

pytestmark = pytest.mark.integration


def test_a_sent_request_whose_check_fails_is_never_sent_again(
    airflow_db, store_conn_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    dag = load_fixture_dag("idempotent_http_check")
    with payments_service() as service:
        monkeypatch.setenv("AIRFLOW_CONN_PAYMENTS_API", service.url)
        first = dag.test(run_conf={"claim_id": "77"})  # the task has two retries
        again = dag.test(run_conf={"claim_id": "77"})
        stats = service.stats()

    assert [first.state, again.state] == [DagRunState.FAILED, DagRunState.FAILED]
    # One request in all: neither the retries nor the second run sent it again.
    assert [(r["path"], r["key"]) for r in stats["requests"]] == [("/payments", "checked-77")]
    (ti,) = first.get_task_instances()
    assert ti.try_number == 1  # failed without retry
    with IdempotencyLedger(IntegrityStore(StoreLocation.from_url(store_conn_env)), namespace="tests") as ledger:
        entry = ledger.get("checked-77")
    assert entry is not None and (entry.state, entry.retryable) == (State.FAILED, False)
    assert "answered 201 Created, so the request was sent" in (entry.error or "")
    assert "ledger release 'checked-77'" in (entry.error or "")
    events = [e["event"] for e in idempotency_events(store_conn_env, "checked-77")]
    assert events == ["claimed", "failed", "failed_permanently"]
