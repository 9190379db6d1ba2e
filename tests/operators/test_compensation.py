"""Compensation on real stores: a process that fails after two payments refunds both, once each, newest first."""

from __future__ import annotations

import pytest

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.ledger.entries import State
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from tests.dag_runs import load_fixture_dag
from tests.http_payments import payments_service
from tests.operators.support import idempotency_events

pytestmark = pytest.mark.integration


def _states(run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


@pytest.mark.requirement("part11.11.10f")
def test_a_failed_process_refunds_its_payments_once_each_newest_first(
    airflow_db, store_conn_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    dag = load_fixture_dag("compensated_payments")
    with payments_service() as service:
        monkeypatch.setenv("AIRFLOW_CONN_PAYMENTS_API", service.url)
        run = dag.test(run_conf={"claim_id": "7", "fail": True})
        stats = service.stats()

    assert run.state == DagRunState.FAILED  # the process failed; its compensation does not hide that
    assert _states(run) == {
        "pay_deposit": "success",
        "pay_balance": "success",
        "book": "failed",
        "compensate": "success",
    }
    paid = stats["payment_of_key"]
    assert stats["refunded"] == [paid["balance-7"], paid["deposit-7"]]  # newest first, once each
    assert stats["refunds_by_key"] == {
        "balance-7/compensation": paid["balance-7"],
        "deposit-7/compensation": paid["deposit-7"],
    }
    with IdempotencyLedger(IntegrityStore(StoreLocation.from_url(store_conn_env)), namespace="tests") as ledger:
        for key in ("deposit-7", "balance-7"):
            undo = ledger.get(f"{key}/compensation")
            assert undo is not None and undo.state is State.COMPLETED
            assert (undo.holder["task_id"], undo.fencing_token) == ("compensate", 1)
    events = [
        (e["event"], e["task_id"], (e["details"].get("effect") or {}).get("key"))
        for e in _compensation_events(store_conn_env, "claim-7")
    ]
    assert events == [
        ("started", "compensate", "balance-7"),
        ("completed", "compensate", "balance-7"),
        ("started", "compensate", "deposit-7"),
        ("completed", "compensate", "deposit-7"),
    ]


def test_a_process_that_succeeds_skips_its_compensation(
    airflow_db, store_conn_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    dag = load_fixture_dag("compensated_payments")
    with payments_service() as service:
        monkeypatch.setenv("AIRFLOW_CONN_PAYMENTS_API", service.url)
        run = dag.test(run_conf={"claim_id": "8", "fail": False})
        stats = service.stats()

    assert run.state == DagRunState.SUCCESS
    assert _states(run)["compensate"] == "skipped"
    assert stats["payments"] == 2 and stats["refunded"] == []


def test_an_undone_effect_is_never_replayed_and_a_rerun_refunds_nothing_twice(
    airflow_db, store_conn_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same claim again after its compensation: the payment key refuses to replay a refunded payment (nor
    pays again); the second run's compensation has no effect of its own to undo."""
    from airflow.utils.state import DagRunState

    dag = load_fixture_dag("compensated_payments")
    with payments_service() as service:
        monkeypatch.setenv("AIRFLOW_CONN_PAYMENTS_API", service.url)
        dag.test(run_conf={"claim_id": "9", "fail": True})
        again = dag.test(run_conf={"claim_id": "9", "fail": False})
        stats = service.stats()

    assert again.state == DagRunState.FAILED
    states = _states(again)
    assert (states["pay_deposit"], states["pay_balance"], states["book"]) == (
        "failed",
        "upstream_failed",
        "upstream_failed",
    )
    assert states["compensate"] == "success"
    assert stats["created_by_key"] == {"deposit-9": 1, "balance-9": 1}
    assert len(stats["refunded"]) == 2
    refused = [e for e in idempotency_events(store_conn_env, "claim-9") if e["event"] == "refused_compensated"]
    assert [(e["task_id"], e["details"]["key"]) for e in refused] == [("pay_deposit", "deposit-9")]


def _compensation_events(url: str, business_key: str) -> list[dict]:
    from airflow_integrity.store.audit.chain import AuditLog
    from airflow_integrity.store.audit.export import iter_records

    store = IntegrityStore(StoreLocation.from_url(url))
    try:
        AuditLog(store).chain_pending()
        return [
            {"event": r.event_type.removeprefix("compensation."), "task_id": r.task_id, "details": r.details}
            for _, r in iter_records(store, business_key=business_key, with_runs=False)
            if not isinstance(r, str) and r.event_type.startswith("compensation.")
        ]
    finally:
        store.engine.dispose()
