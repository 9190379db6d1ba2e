"""Code run in the child processes of ``test_concurrency.py`` (beside it): kept free of pytest so that
sixteen spawned interpreters start quickly. Collected by pytest, it holds no tests."""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy import text

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.entries import ClaimStatus, StaleHolderError
from airflow_integrity.store.ledger.heartbeat import LeaseHeartbeat
from airflow_integrity.store.ledger.ledger import IdempotencyLedger

INPUTS = {"claim_id": 42, "amount": "125.40"}


def open_ledger(url: str) -> IdempotencyLedger:
    """A ledger on the store at ``url``, in the namespace the tests use."""
    return IdempotencyLedger(IntegrityStore(StoreLocation.from_url(url)), namespace="payments")


def effect(ledger: IdempotencyLedger, key: str, token: int) -> int:
    """The guarded side effect: a row in a table outside the ledger."""
    with ledger.store.begin() as conn:
        conn.execute(
            text("INSERT INTO effects (effect_key, fencing_token, pid) VALUES (:k, :t, :p)"),
            {"k": key, "t": token, "p": os.getpid()},
        )
        return int(conn.execute(text("SELECT count(*) FROM effects")).scalar_one())


def claim_until_settled(ledger: IdempotencyLedger, key: str, lease: float, work_seconds: float) -> dict[str, Any]:
    """Claim ``key``; run the effect when granted, wait with backoff while busy, return what was decided."""
    statuses = []
    for attempt in range(400):
        outcome = ledger.claim(
            key, fingerprint=inputs_digest(INPUTS), holder={"pid": os.getpid()}, lease_seconds=lease
        )
        statuses.append(outcome.status.value)
        if outcome.lease is not None:
            time.sleep(work_seconds)
            effect_no = effect(ledger, key, outcome.lease.fencing_token)
            result = {"effect_no": effect_no, "paid_by": os.getpid(), "token": outcome.lease.fencing_token}
            ledger.complete(outcome.lease, result)
            return {"result": result, "statuses": statuses}
        if outcome.status is ClaimStatus.REPLAY:
            return {"result": outcome.result, "statuses": statuses}
        assert outcome.status is ClaimStatus.BUSY, outcome.message
        time.sleep(min(0.02 * 1.5**attempt, 0.25, outcome.retry_after or 0.25))
    raise AssertionError(f"key {key} never settled: {statuses[-5:]}")


def racer(url: str, key: str, barrier: Any, out: Any) -> None:
    """Start with the others at the barrier, then claim until the key is settled."""
    ledger = open_ledger(url)
    barrier.wait()
    out.put(claim_until_settled(ledger, key, lease=30.0, work_seconds=0.3))


def doomed_holder(url: str, key: str, claimed: Any) -> None:
    """Claim with a short lease, report, and stay mid-work until killed."""
    ledger = open_ledger(url)
    outcome = ledger.claim(key, fingerprint=inputs_digest(INPUTS), holder={"role": "doomed"}, lease_seconds=1.5)
    claimed.put((outcome.status.value, outcome.fencing_token, os.getpid()))
    time.sleep(600)  # mid-work, until killed


def retry(url: str, key: str, go: Any, out: Any) -> None:
    """The retry: once told to go, claim until the key is settled."""
    ledger = open_ledger(url)
    go.wait()
    out.put(claim_until_settled(ledger, key, lease=30.0, work_seconds=0.0))


def sleeper(url: str, key: str, ready: Any, go: Any, out: Any) -> None:
    """Hold the key under a heartbeat until told to go, then try to complete; report what happened."""
    ledger = open_ledger(url)
    outcome = ledger.claim(key, fingerprint=inputs_digest(INPUTS), holder={"role": "sleeper"}, lease_seconds=1.0)
    assert outcome.lease is not None
    report: dict[str, Any] = {"token": outcome.lease.fencing_token}
    interrupted = []
    heartbeat = LeaseHeartbeat(ledger, outcome.lease, on_lost=lambda refusal: interrupted.append(str(refusal)))
    try:
        with heartbeat:
            ready.set()
            go.wait()
            # Go on working after waking; the heartbeat's next renewal finds the lease gone.
            deadline = time.monotonic() + 5
            while not interrupted and time.monotonic() < deadline:
                time.sleep(0.05)
        report["heartbeat"] = "kept"
    except StaleHolderError as refusal:
        report["heartbeat"] = f"lost: {refusal}"
    report["renewals"] = heartbeat.renewals
    # A holder that ignores its heartbeat and completes anyway is refused by the fencing token.
    try:
        ledger.complete(outcome.lease, {"paid_by": "sleeper"})
        report["complete"] = "accepted"
    except StaleHolderError as refusal:
        report["complete"] = f"refused: {refusal}"
    out.put(report)
