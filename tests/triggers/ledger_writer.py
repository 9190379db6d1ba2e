"""Run in a child process by the trigger tests: settle an idempotency key a little later. Holds no tests."""

from __future__ import annotations

import time

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.ledger import IdempotencyLedger


def complete_later(url: str, namespace: str, key: str, delay: float, result: object) -> None:
    """Claim ``key`` after ``delay`` seconds and complete it with ``result``."""
    time.sleep(delay)
    with IdempotencyLedger(IntegrityStore(StoreLocation.from_url(url)), namespace=namespace) as ledger:
        outcome = ledger.claim(key, fingerprint=inputs_digest({"writer": True}), holder={"role": "writer"})
        assert outcome.lease is not None, outcome.message
        ledger.complete(outcome.lease, result)
