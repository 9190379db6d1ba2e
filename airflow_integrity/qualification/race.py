"""The claimant processes of the qualification's ledger race: spawned, so kept light (no Airflow import)."""

from __future__ import annotations

import os
import time
from typing import Any

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.entries import ClaimStatus
from airflow_integrity.store.ledger.ledger import IdempotencyLedger

NAMESPACE = "qualification"
WORK_SECONDS = 0.3


def claimant(url: str, key: str, barrier: Any, out: Any) -> None:
    """Wait for the others, then claim ``key`` until it is settled; report ``(ran the work, result)``."""
    ledger = IdempotencyLedger(IntegrityStore(StoreLocation.from_url(url)), namespace=NAMESPACE)
    fingerprint = inputs_digest({"qualification_key": key})
    barrier.wait()
    for attempt in range(400):
        outcome = ledger.claim(key, fingerprint=fingerprint, holder={"pid": os.getpid()}, lease_seconds=30.0)
        if outcome.lease is not None:
            time.sleep(WORK_SECONDS)
            result = {"ran_in": os.getpid(), "fencing_token": outcome.lease.fencing_token}
            ledger.complete(outcome.lease, result)
            out.put((True, result))
            return
        if outcome.status is ClaimStatus.REPLAY:
            out.put((False, outcome.result))
            return
        time.sleep(min(0.02 * 1.5**attempt, 0.25, outcome.retry_after or 0.25))
    out.put((False, None))
