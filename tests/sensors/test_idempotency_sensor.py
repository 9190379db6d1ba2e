"""``IdempotencyKeySensor`` against real stores: what a poke decides and how a trigger event is handled.

Its runs inside Airflow (deferred and poking) are in tests/decorators/test_idempotent_dag.py."""

from __future__ import annotations

import pytest

from airflow_integrity.compat import AirflowFailException, AirflowSensorTimeout
from airflow_integrity.sensors.idempotency import IdempotencyKeySensor
from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.ledger import IdempotencyLedger

pytestmark = pytest.mark.integration


def _sensor(key: str, **kwargs: object) -> IdempotencyKeySensor:
    return IdempotencyKeySensor(task_id=f"wait_{key}", key=key, namespace="payments", **kwargs)  # type: ignore[arg-type]


def test_poke_waits_returns_the_stored_result_or_fails_for_good(store, store_conn_env: str) -> None:
    sensor = _sensor("claim-1")
    assert sensor.poke({}) is False  # never claimed
    with IdempotencyLedger(store, namespace="payments") as ledger:
        outcome = ledger.claim("claim-1", fingerprint=inputs_digest({"a": 1}))
        assert outcome.lease is not None
        assert sensor.poke({}) is False  # in progress
        ledger.complete(outcome.lease, {"payment_id": "p-1"})
        done = sensor.poke({})
        assert not isinstance(done, bool)
        assert (done.is_done, done.xcom_value) == (True, {"payment_id": "p-1"})
        assert sensor.execute_complete({}, {"status": "completed", "key": "claim-1"}) == {"payment_id": "p-1"}

        failing = ledger.claim("claim-2", fingerprint=inputs_digest({"a": 1}))
        assert failing.lease is not None
        ledger.fail(failing.lease, "account closed", retryable=False)
    with pytest.raises(AirflowFailException, match=r"'claim-2'.*failed without retry: account closed.*release"):
        _sensor("claim-2").poke({})


def test_trigger_events_become_a_result_or_a_clear_failure(store, store_conn_env: str) -> None:
    sensor = _sensor("claim-3", deferrable=True)
    with pytest.raises(AirflowFailException, match="failed without retry: card declined"):
        sensor.execute_complete({}, {"status": "failed_permanently", "error": "card declined"})
    with pytest.raises(AirflowSensorTimeout, match="did not become completed"):
        sensor.execute_complete({}, {"status": "timeout", "message": "'claim-3' did not become completed"})
    with pytest.raises(Exception, match="was completed but is now gone"):
        sensor.execute_complete({}, {"status": "completed", "key": "claim-3"})
