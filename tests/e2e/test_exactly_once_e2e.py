"""Exactly-once HTTP effects on a real cluster: a task process SIGKILLed while its payment is in flight.

The payments service (a separate process) receives the first try's ``POST /payments``, creates the payment
and then does not answer. The test kills that task process with SIGKILL while the request is in flight. The
scheduler fails the try for its lost heartbeat, Airflow retries it, and the retry takes the key over from the
dead holder once its lease has expired (fencing token 2). It sends the same ``Idempotency-Key`` again and the
service answers with the payment it already made; the ledger completes with that response. A second run for
the same claim, triggered over REST, replays the stored response without calling the service again.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.verify import verify
from airflow_integrity.store.ledger.entries import State
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from tests.e2e.conftest import ClusterFactory, E2EPostgres
from tests.http_payments import payments_service
from tests.operators.support import idempotency_events

DAG_ID = "exactly_once_payment"
TASK_ID = "pay_claim"
CONF = {"claim_id": "7001", "amount": "310.25"}
KEY = "claim-7001"


def _dags_folder(tmp_path: Path) -> Path:
    """A DAGs folder holding only the test DAG."""
    folder = tmp_path / "dags"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "dags" / f"{DAG_ID}.py", folder)
    return folder


@pytest.mark.e2e
def test_a_task_killed_while_its_payment_is_in_flight_pays_once(
    airflow_cluster_factory: ClusterFactory, e2e_pg: E2EPostgres, tmp_path: Path
) -> None:
    store_uri = e2e_pg.create_database("store")
    with payments_service() as service:
        service.hold(KEY)
        env = {
            "AIRFLOW_CONN_INTEGRITY_DEFAULT": store_uri,
            "AIRFLOW_CONN_PAYMENTS_API": service.url,
            # The scheduler fails the killed try as soon as the executor reports its supervisor done while
            # the try is still running; a lost heartbeat would fail it too, and this keeps that fallback short.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        }
        cluster = airflow_cluster_factory(_dags_folder(tmp_path), env=env)
        with cluster:
            cluster.wait_for_dag(DAG_ID, timeout=120)
            run_id = cluster.trigger(DAG_ID, conf=CONF)
            held = service.wait_for_held(KEY, timeout=120)
            cluster.kill_process(held["task_pid"])
            state = cluster.wait_for_run(DAG_ID, run_id, timeout=180)
            tries = cluster.tries(DAG_ID, run_id, TASK_ID)
            returned = cluster.returned(DAG_ID, run_id, TASK_ID)
            after_first_run = service.stats()

            second_run_id = cluster.trigger(DAG_ID, conf=CONF)
            second_state = cluster.wait_for_run(DAG_ID, second_run_id, timeout=120)
            second_tries = cluster.tries(DAG_ID, second_run_id, TASK_ID)
            second_returned = cluster.returned(DAG_ID, second_run_id, TASK_ID)
            after_second_run = service.stats()
            logs = cluster.logs_tail()
        assert cluster.surviving_processes() == []

    assert state == "success", logs
    assert second_state == "success", logs

    # The service made one payment. The killed try's request was never answered; the retry sent the same
    # key from another process and got the payment already made. The second run did not call at all.
    assert after_first_run["created_by_key"] == {KEY: 1}
    assert after_first_run["payments"] == 1
    first, retry = after_first_run["requests"]
    assert (first["key"], first["held"], first["status"]) == (KEY, True, None)
    assert (retry["key"], retry["held"], retry["status"]) == (KEY, False, 200)
    assert retry["task_pid"] not in (None, first["task_pid"])
    assert retry["body"] == first["body"]
    assert after_second_run["requests"] == after_first_run["requests"]
    assert after_second_run["created_by_key"] == {KEY: 1}

    # Airflow: the killed try failed and was retried; the retry succeeded. The second run took one try.
    assert [(t["try_number"], t["state"]) for t in tries[1:]] == [(2, "success")], tries
    assert tries[0]["try_number"] == 1 and tries[0]["state"] in ("failed", "up_for_retry"), tries
    assert [(t["try_number"], t["state"]) for t in second_tries] == [(1, "success")], second_tries

    # The task returned the service's answer to the retry, naming the one payment; the second run replayed it.
    assert returned == {
        "status_code": 200,
        "reason": "OK",
        "headers": {"Content-Type": "application/json"},
        "json": {"payment_id": "pay-1", "request": CONF},
    }
    assert second_returned == returned

    # The ledger: completed by the retry under fencing token 2, with that response as its result.
    store = IntegrityStore(StoreLocation.from_url(store_uri))
    with IdempotencyLedger(store, namespace="payments") as ledger:
        entry = ledger.get(KEY)
        assert entry is not None
        assert entry.state is State.COMPLETED and entry.fencing_token == 2
        assert (entry.holder["run_id"], entry.holder["try_number"]) == (run_id, 2)
        assert ledger.load_result(entry) == returned
        history = {h.event: h for h in ledger.history(KEY)}

    # The audit trail: claimed by try 1; try 2 found the dead try's lease still live, waited for it to expire
    # and took the key over; it completed; the second run replayed the result.
    events = idempotency_events(store_uri, KEY)
    assert [(e["event"], e["run_id"], e["try_number"]) for e in events] == [
        ("claimed", run_id, 1),
        ("conflict", run_id, 2),
        ("takeover", run_id, 2),
        ("completed", run_id, 2),
        ("replayed", second_run_id, 1),
    ], events
    claimed, conflict, takeover, completed, replayed = (e["details"] for e in events)
    assert claimed["fencing_token"] == conflict["fencing_token"] == 1
    assert takeover["fencing_token"] == completed["fencing_token"] == replayed["fencing_token"] == 2
    for dead_holder in (conflict["holder"], takeover["previous_holder"]):
        assert (dead_holder["try_number"], dead_holder["pid"]) == (1, first["task_pid"]), dead_holder
    assert history["takeover"].at >= datetime.fromisoformat(conflict["lease_expires_at"]), history
    assert replayed["result_sha256"] == completed["result_sha256"]
    killed_try = [
        r.event_type
        for _, r in iter_records(store, run_id=run_id)
        if not isinstance(r, str) and r.task_id == TASK_ID and r.try_number == 1
    ]
    assert killed_try == ["task_instance.running", "idempotency.claimed", "task_instance.up_for_retry"], killed_try
    result = verify(store)
    assert result.ok, result.summary()
