"""The order_to_cash example against the demo services (a separate process), on real stores."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.dag_runs import load_example_dag
from tests.demo_services import call, demo_services
from tests.operators.support import idempotency_events

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def _demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The demo services, with the example DAGs' connections set for this test."""
    with demo_services() as (url, conns):
        for name, value in conns.items():
            monkeypatch.setenv(name, value)
        yield url


def test_an_invoice_below_the_threshold_is_posted_checked_and_captured_once(
    airflow_db, store_conn_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    dag = load_example_dag("order_to_cash")
    conf = {"invoice_id": "INV-2001", "customer": "Initech", "amount": 950.0, "currency": "EUR"}
    with _demo(monkeypatch) as url:
        call(url, "/control/down", {"system": "bureau-a", "down": True})
        runs = [dag.test(run_conf=conf), dag.test(run_conf=conf)]
        done = call(url, "/stats")["done"]

    assert [run.state for run in runs] == [DagRunState.SUCCESS, DagRunState.SUCCESS]
    states = {ti.task_id: ti.state for ti in runs[0].get_task_instances()}
    assert states == {
        "extract_invoice": "success",
        "validate_invoice": "success",
        "post_to_erp": "success",
        "credit_check": "success",
        "route": "success",
        "approve_invoice": "skipped",
        "capture_payment": "success",
        "compensate": "skipped",
    }
    # Once each across both runs; the primary bureau was down, so the fallback answered, once.
    assert done == {"/erp/invoices": 1, "/bureau-b/checks": 1, "/payments/payments": 1}
    events = [(e["event"], e["task_id"]) for e in idempotency_events(store_conn_env, "invoice-INV-2001")]
    assert events.count(("completed", "post_to_erp")) == 1 and events.count(("replayed", "post_to_erp")) == 1


def test_a_failed_capture_credits_the_erp_posting_back(
    airflow_db, store_conn_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The payments system is down (503) through every retry: the capture fails for good, and the compensation
    issues the credit note for the ERP posting, once; the credit check has nothing to undo."""
    from airflow.utils.state import DagRunState

    dag = load_example_dag("order_to_cash")
    for task in dag.tasks:
        task.retry_delay = timedelta(0)  # the capture's retries meet the same outage at once
    conf = {"invoice_id": "INV-2002", "customer": "Globex", "amount": 720.0, "currency": "USD"}
    with _demo(monkeypatch) as url:
        call(url, "/control/down", {"system": "payments", "down": True})
        run = dag.test(run_conf=conf)
        done = call(url, "/stats")["done"]

    assert run.state == DagRunState.FAILED
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert (states["capture_payment"], states["compensate"]) == ("failed", "success")
    assert done == {"/erp/invoices": 1, "/bureau-a/checks": 1, "/erp/credit-notes": 1}
    summary = next(ti for ti in run.get_task_instances() if ti.task_id == "compensate").xcom_pull(
        task_ids="compensate"
    )
    assert summary["undone"] == ["invoice-INV-2002"]
    assert summary["nothing_to_undo"] == ["credit-invoice-INV-2002"] and summary["not_declared"] == []
