"""Run in a child process by ``test_idempotent_deferral``: a live holder of a key. Holds no tests.

It claims the key, keeps its lease alive, and completes the key once the audit trail shows that another
attempt met it (an ``idempotency.conflict`` event), so the test can watch that attempt wait rather than run.
"""

from __future__ import annotations

import time
from typing import Any

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.heartbeat import LeaseHeartbeat
from airflow_integrity.store.ledger.ledger import IdempotencyLedger


def hold_until_conflict(url: str, namespace: str, key: str, inputs: Any, result: Any, claimed: Any) -> None:
    """Claim ``key``, report the claim, and complete it with ``result`` after someone else met it."""
    store = IntegrityStore(StoreLocation.from_url(url))
    with IdempotencyLedger(store, namespace=namespace) as ledger:
        outcome = ledger.claim(
            key, fingerprint=inputs_digest(inputs), holder={"role": "live holder"}, lease_seconds=3
        )
        assert outcome.lease is not None, outcome.message
        claimed.set()
        deadline = time.monotonic() + 120
        with LeaseHeartbeat(ledger, outcome.lease):
            while time.monotonic() < deadline:
                AuditLog(store).chain_pending()
                events = [
                    r for _, r in iter_records(store, business_key=key, with_runs=False) if not isinstance(r, str)
                ]
                if any(r.event_type == "idempotency.conflict" for r in events):
                    break
                time.sleep(0.1)
        ledger.complete(outcome.lease, result)
