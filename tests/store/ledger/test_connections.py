"""The ledger's kept connection: outages surface as clear store errors, a lost connection is replaced, and
the connection goes back to the pool as the store's other users expect it."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore, StoreLocation, StoreUnavailableError
from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.entries import ClaimStatus
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from tests.pg import terminate_other_sessions

pytestmark = pytest.mark.integration

INPUTS = inputs_digest({"claim_id": 42})


def test_an_unreachable_store_is_reported_with_its_source_and_what_to_check() -> None:
    location = StoreLocation.from_url("postgresql://u:secret-pw@127.0.0.1:9/integrity", source="connection 'x'")
    with IdempotencyLedger(IntegrityStore(location)) as ledger, pytest.raises(StoreUnavailableError) as err:
        ledger.claim("claim-42", fingerprint=INPUTS)
    message = str(err.value)
    assert "connection 'x'" in message and "127.0.0.1:9" in message and "secret-pw" not in message


def test_a_connection_lost_mid_session_is_reported_then_replaced(pg_database: str) -> None:
    store = IntegrityStore(StoreLocation.from_url(pg_database))
    store.migrate()
    with IdempotencyLedger(store) as ledger:
        first = ledger.claim("claim-42", fingerprint=INPUTS)
        assert first.lease is not None
        assert terminate_other_sessions(pg_database) >= 1
        with pytest.raises(StoreUnavailableError, match="Cannot reach the integrity store"):
            ledger.complete(first.lease, {"paid": True})
        # The next statement runs on a fresh connection; the lease is still this holder's.
        assert ledger.complete(first.lease, {"paid": True}).fencing_token == 1
        assert ledger.claim("claim-42", fingerprint=INPUTS).status is ClaimStatus.REPLAY


def test_the_connection_returns_to_the_pool_ready_for_transactions(store: IntegrityStore) -> None:
    with store.begin() as conn:
        conn.execute(text("CREATE TABLE scratch (n INTEGER)"))
    for n in range(3):
        with IdempotencyLedger(store) as ledger:
            ledger.claim(f"claim-{n}", fingerprint=INPUTS)
        with pytest.raises(RuntimeError), store.begin() as conn:
            conn.execute(text("INSERT INTO scratch (n) VALUES (:n)"), {"n": n})
            raise RuntimeError("roll back")
    with store.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM scratch")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM integrity_ledger")).scalar_one() == 3
