"""``IdempotencyKeyTrigger`` against real stores: its serialisation, and ``run()`` driven with ``asyncio.run``."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import pytest

from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from airflow_integrity.triggers.idempotency import IdempotencyKeyTrigger
from tests.triggers.ledger_writer import complete_later

pytestmark = pytest.mark.integration


def _events(trigger: IdempotencyKeyTrigger) -> list[dict]:
    async def collect() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=60))


@pytest.mark.unit
def test_serialize_round_trips_exactly() -> None:
    trigger = IdempotencyKeyTrigger(
        key="claim-42", namespace="payments", integrity_conn_id="ledger_db", wait_for="free", poll_interval=0.5,
        timeout=30.0,
    )  # fmt: skip
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_integrity.triggers.idempotency.IdempotencyKeyTrigger"
    assert kwargs == {
        "key": "claim-42",
        "namespace": "payments",
        "integrity_conn_id": "ledger_db",
        "wait_for": "free",
        "poll_interval": 0.5,
        "timeout": 30.0,
    }
    assert IdempotencyKeyTrigger(**kwargs).serialize() == (classpath, kwargs)
    with pytest.raises(ValueError, match="wait_for='done' is not one of"):
        IdempotencyKeyTrigger(key="claim-42", wait_for="done")


def test_fires_once_another_process_completes_the_key(store, store_conn_env: str) -> None:
    writer = multiprocessing.get_context("spawn").Process(
        target=complete_later, args=(store_conn_env, "payments", "claim-1", 1.0, {"paid": 1})
    )
    writer.start()
    try:
        trigger = IdempotencyKeyTrigger(key="claim-1", namespace="payments", poll_interval=0.1, timeout=30)
        events = _events(trigger)
    finally:
        writer.join(30)
    assert writer.exitcode == 0
    assert len(events) == 1
    event = events[0]
    assert (event["status"], event["key"], event["state"], event["fencing_token"]) == (
        "completed", "claim-1", "completed", 1
    )  # fmt: skip
    with IdempotencyLedger(store, namespace="payments") as ledger:
        entry = ledger.get("claim-1")
    assert entry is not None and event["result_sha256"] == entry.result_sha256
    assert "result" not in event  # the sensor reads the result from the ledger, events stay small


def test_reports_a_permanent_failure_and_a_timeout_clearly(store, store_conn_env: str) -> None:
    with IdempotencyLedger(store, namespace="payments") as ledger:
        outcome = ledger.claim("claim-2", fingerprint=inputs_digest({"a": 1}))
        assert outcome.lease is not None
        ledger.fail(outcome.lease, "card declined for good", retryable=False)
    failed = _events(IdempotencyKeyTrigger(key="claim-2", namespace="payments", poll_interval=0.1))
    assert [(e["status"], e["error"]) for e in failed] == [("failed_permanently", "card declined for good")]

    began = time.monotonic()
    timed_out = _events(IdempotencyKeyTrigger(key="claim-3", namespace="payments", poll_interval=0.1, timeout=0.5))
    assert 0.5 <= time.monotonic() - began < 10
    assert [e["status"] for e in timed_out] == ["timeout"]
    assert (
        "'claim-3' (namespace 'payments') did not become completed within 0.5 s; it is never claimed"
        in (timed_out[0]["message"])
    )


def test_waiting_for_a_free_key_ends_when_the_holders_lease_expires(store, store_conn_env: str) -> None:
    with IdempotencyLedger(store, namespace="payments") as ledger:
        held = ledger.claim("claim-4", fingerprint=inputs_digest({"a": 1}), lease_seconds=1.0)
        assert held.lease is not None
    began = time.monotonic()
    events = _events(
        IdempotencyKeyTrigger(key="claim-4", namespace="payments", wait_for="free", poll_interval=0.1)
    )
    assert time.monotonic() - began >= 0.5
    assert [(e["status"], e["state"], e["fencing_token"]) for e in events] == [("free", "in_progress", 1)]
