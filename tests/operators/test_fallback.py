"""IdempotentHttpOperator's fallback: used once when the primary provably did nothing, never when the request
may have reached it. Real services on both sides, real stores (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.ledger.entries import State
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from tests.dag_runs import load_fixture_dag
from tests.http_payments import payments_service
from tests.operators.support import idempotency_events

pytestmark = pytest.mark.integration


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound, never listening: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _trail(url: str, key: str) -> list[tuple[str, dict]]:
    from airflow_integrity.store.audit.chain import AuditLog
    from airflow_integrity.store.audit.export import iter_records

    store = IntegrityStore(StoreLocation.from_url(url))
    try:
        AuditLog(store).chain_pending()
        return [
            (r.event_type, r.details)
            for _, r in iter_records(store, business_key=key, with_runs=False)
            if not isinstance(r, str) and r.event_type.split(".")[0] in ("idempotency", "fallback")
        ]
    finally:
        store.engine.dispose()


def _pay(run):  # type: ignore[no-untyped-def]
    return next(ti for ti in run.get_task_instances() if ti.task_id == "pay")


def _entry(url: str, key: str):  # type: ignore[no-untyped-def]
    with IdempotencyLedger(IntegrityStore(StoreLocation.from_url(url)), namespace="tests") as ledger:
        return ledger.get(key)


@pytest.mark.parametrize("primary_fault", ["refused", "503"])
def test_a_primary_that_did_nothing_routes_the_effect_to_the_fallback_once(
    primary_fault: str, airflow_db, store_conn_env: str, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    from airflow.utils.state import DagRunState

    dag = load_fixture_dag("fallback_payments")
    with payments_service() as primary, payments_service() as fallback:
        # A base URL with a path: the connection's host (in a URI the path would be read as its schema).
        primary_url = f"http://127.0.0.1:{closed_port}" if primary_fault == "refused" else f"{primary.url}/down"
        monkeypatch.setenv("AIRFLOW_CONN_PRIMARY_API", json.dumps({"conn_type": "http", "host": primary_url}))
        monkeypatch.setenv("AIRFLOW_CONN_FALLBACK_API", fallback.url)
        first = dag.test(run_conf={"claim_id": primary_fault})
        again = dag.test(run_conf={"claim_id": primary_fault})
        on_primary, on_fallback = primary.stats(), fallback.stats()

    key = f"fallback-{primary_fault}"
    assert [first.state, again.state] == [DagRunState.SUCCESS, DagRunState.SUCCESS]
    assert on_fallback["created_by_key"] == {key: 1} and len(on_fallback["requests"]) == 1
    assert on_fallback["requests"][0]["key"] == key  # the same idempotency key travels to the fallback
    assert on_primary["payments"] == 0
    assert len(on_primary["requests"]) == (1 if primary_fault == "503" else 0)
    assert _pay(first).try_number == 1
    entry = _entry(store_conn_env, key)
    assert entry is not None and entry.state is State.COMPLETED
    trail = _trail(store_conn_env, key)
    assert [event for event, _ in trail] == [
        "idempotency.claimed",
        "fallback.used",
        "idempotency.completed",
        "idempotency.replayed",
    ]
    used = trail[1][1]
    assert (used["primary"], used["fallback"], used["key"]) == ("primary_api", "fallback_api", key)
    expected = "could not be reached" if primary_fault == "refused" else "answered 503"
    assert expected in used["reason"]


def test_a_request_that_may_have_reached_the_primary_is_never_sent_to_the_fallback(
    airflow_db, store_conn_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The primary makes the payment and does not answer within the 2 s timeout: the task fails without retry
    for a person, the fallback is never called, and the key stays failed until someone releases it."""
    from airflow.utils.state import DagRunState

    dag = load_fixture_dag("fallback_payments")
    with payments_service() as primary, payments_service() as fallback:
        primary.hold("fallback-slow", seconds=30)
        monkeypatch.setenv("AIRFLOW_CONN_PRIMARY_API", primary.url)
        monkeypatch.setenv("AIRFLOW_CONN_FALLBACK_API", fallback.url)
        run = dag.test(run_conf={"claim_id": "slow"})
        primary.release("fallback-slow")
        on_primary, on_fallback = primary.stats(), fallback.stats()

    assert run.state == DagRunState.FAILED
    assert _pay(run).try_number == 1  # failed without retry although the task has one
    assert on_fallback["requests"] == []
    assert on_primary["created_by_key"] == {"fallback-slow": 1}
    entry = _entry(store_conn_env, "fallback-slow")
    assert entry is not None and (entry.state, entry.retryable) == (State.FAILED, False)
    assert "may have been received" in (entry.error or "")
    events = [e["event"] for e in idempotency_events(store_conn_env, "fallback-slow")]
    assert events == ["claimed", "failed"]


def test_an_effect_made_through_the_fallback_is_undone_through_it(
    airflow_db, store_conn_env: str, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    from airflow.utils.state import DagRunState

    dag = load_fixture_dag("fallback_payments")
    with payments_service() as fallback:
        monkeypatch.setenv("AIRFLOW_CONN_PRIMARY_API", f"http://127.0.0.1:{closed_port}")
        monkeypatch.setenv("AIRFLOW_CONN_FALLBACK_API", fallback.url)
        run = dag.test(run_conf={"claim_id": "undo", "fail": True})
        stats = fallback.stats()

    assert run.state == DagRunState.FAILED
    assert {ti.task_id: ti.state for ti in run.get_task_instances()}["compensate"] == "success"
    assert stats["refunded"] == [stats["payment_of_key"]["fallback-undo"]]
    assert stats["refunds_by_key"] == {"fallback-undo/compensation": stats["payment_of_key"]["fallback-undo"]}


@pytest.mark.parametrize("acting", ["primary", "fallback"])
def test_an_error_answer_from_a_provider_that_may_have_acted_ends_the_key_for_a_person(
    acting: str, airflow_db, store_conn_env: str, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    """A 500 may come from a provider that acted (here it did): no later try may send the request to the other
    provider, so the key fails without retry although the task has one."""
    from airflow.utils.state import DagRunState

    dag = load_fixture_dag("fallback_payments")
    with payments_service() as service:
        failing = json.dumps({"conn_type": "http", "host": f"{service.url}/fail-after"})
        refused = f"http://127.0.0.1:{closed_port}"
        monkeypatch.setenv("AIRFLOW_CONN_PRIMARY_API", failing if acting == "primary" else refused)
        monkeypatch.setenv("AIRFLOW_CONN_FALLBACK_API", refused if acting == "primary" else failing)
        run = dag.test(run_conf={"claim_id": acting})
        stats = service.stats()

    key = f"fallback-{acting}"
    assert run.state == DagRunState.FAILED
    assert _pay(run).try_number == 1
    assert stats["created_by_key"] == {key: 1} and len(stats["requests"]) == 1  # one provider, once
    entry = _entry(store_conn_env, key)
    assert entry is not None and (entry.state, entry.retryable) == (State.FAILED, False)
    assert "may have been received" in (entry.error or "") and "500" in (entry.error or "")
    used = [event for event, _ in _trail(store_conn_env, key) if event == "fallback.used"]
    assert used == ([] if acting == "primary" else ["fallback.used"])
