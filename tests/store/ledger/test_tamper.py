"""The ledger under edits made behind its back, on SQLite and PostgreSQL.

A person with the store's runtime rights issues plain SQL against ``integrity_ledger``: every change that is
not one of the ledger's own transitions is refused by the database, so no stored result, time to live or
failure can be altered to replay an attacker's result or to run a settled key again. Someone who removes the
triggers (the tables' owner, or anyone who can write the SQLite file) is still caught when a result is
replayed: it is checked against its recorded SHA-256, inline results as blobs.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from airflow_integrity.store import IntegrityStore
from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.entries import ClaimStatus, ResultCorruptedError, State
from airflow_integrity.store.ledger.ledger import IdempotencyLedger

pytestmark = pytest.mark.integration

INPUTS = inputs_digest({"claim_id": 42, "amount": "125.40"})
KEY = "claim-42"
_LEDGER_TRIGGERS = (
    "integrity_ledger_transitions_insert",
    "integrity_ledger_transitions_update",
    "integrity_ledger_no_delete",
)


@pytest.fixture
def ledger(store: IntegrityStore) -> IdempotencyLedger:
    with IdempotencyLedger(store, namespace="payments") as ledger:
        yield ledger


def _completed(ledger: IdempotencyLedger, result: object = None) -> None:
    claim = ledger.claim(KEY, fingerprint=INPUTS)
    assert claim.lease is not None
    ledger.complete(claim.lease, {"iban": "DE02 1203 0000 0000 2020 51"} if result is None else result)


def _failed_for_good(ledger: IdempotencyLedger) -> None:
    claim = ledger.claim(KEY, fingerprint=INPUTS)
    assert claim.lease is not None
    ledger.fail(claim.lease, "card declined", retryable=False)


def _sql(store: IntegrityStore, statement: str, **params: object) -> None:
    with store.begin() as conn:
        conn.execute(text(statement), params)


def _refused(store: IntegrityStore, statement: str, **params: object) -> None:
    with pytest.raises(DBAPIError, match=r"refused|append-only"):
        _sql(store, statement, **params)


def _row(store: IntegrityStore) -> dict[str, object]:
    with store.read() as conn:
        return dict(conn.execute(text("SELECT * FROM integrity_ledger")).mappings().one())


def _drop_ledger_triggers(store: IntegrityStore) -> None:
    """What the tables' owner can do: switch the checks off."""
    if store.backend == "postgresql":
        _sql(store, "ALTER TABLE integrity_ledger DISABLE TRIGGER USER")
    else:
        for name in (*_LEDGER_TRIGGERS, "integrity_ledger_history_on_update"):
            _sql(store, f"DROP TRIGGER {name}")


@pytest.mark.requirement("hipaa.164.312c1")
def test_an_edited_result_is_refused_and_the_stored_one_replayed(ledger: IdempotencyLedger) -> None:
    _completed(ledger)
    before = _row(ledger.store)
    forged = json.dumps({"iban": "GB33 BUKB 2020 1555 5555 55"})
    _refused(ledger.store, "UPDATE integrity_ledger SET result_json = :r", r=forged)
    # Even with a matching digest, so that the edit would pass the replay's check.
    digest = __import__("hashlib").sha256(forged.encode()).hexdigest()
    _refused(ledger.store, "UPDATE integrity_ledger SET result_json = :r, result_sha256 = :d", r=forged, d=digest)
    assert _row(ledger.store) == before
    replay = ledger.claim(KEY, fingerprint=INPUTS)
    assert (replay.status, replay.result) == (ClaimStatus.REPLAY, {"iban": "DE02 1203 0000 0000 2020 51"})


def test_a_completed_key_cannot_be_given_a_time_to_live_or_reopened_by_hand(ledger: IdempotencyLedger) -> None:
    _completed(ledger)
    for statement in (
        "UPDATE integrity_ledger SET expires_at = created_at",
        "UPDATE integrity_ledger SET state = 'failed', retryable = true",
        "UPDATE integrity_ledger SET state = 'released'",  # a release names its person and reason
        "UPDATE integrity_ledger SET fencing_token = 0",
        "UPDATE integrity_ledger SET fingerprint = :f",
        "DELETE FROM integrity_ledger",
    ):
        _refused(ledger.store, statement, f=inputs_digest("other inputs"))
    assert ledger.claim(KEY, fingerprint=INPUTS).status is ClaimStatus.REPLAY
    assert [h.event for h in ledger.history(KEY)] == ["claimed", "completed", "replayed"]


def test_a_key_that_failed_for_good_cannot_be_made_retryable_by_hand(ledger: IdempotencyLedger) -> None:
    _failed_for_good(ledger)
    _refused(ledger.store, "UPDATE integrity_ledger SET retryable = true")
    _refused(ledger.store, "UPDATE integrity_ledger SET state = 'in_progress', lease_expires_at = updated_at")
    assert ledger.claim(KEY, fingerprint=INPUTS).status is ClaimStatus.FAILED_PERMANENTLY


def test_a_live_lease_cannot_be_cut_short_nor_a_settled_row_inserted(ledger: IdempotencyLedger) -> None:
    claim = ledger.claim(KEY, fingerprint=INPUTS, lease_seconds=60)
    assert claim.lease is not None
    # Cutting the holder's lease would let a second attempt take the key over while the first still works.
    _refused(ledger.store, "UPDATE integrity_ledger SET lease_expires_at = created_at")
    assert ledger.claim(KEY, fingerprint=INPUTS).status is ClaimStatus.BUSY
    # A key that was never claimed cannot be made to look settled (its work would never run).
    _refused(
        ledger.store,
        "INSERT INTO integrity_ledger (namespace, idempotency_key, fingerprint, state, holder, origin, "
        "fencing_token, lease_seconds, attempts, result_json, result_size, result_sha256, last_event, created_at, "
        "updated_at, completed_at) SELECT namespace, 'claim-43', fingerprint, 'completed', holder, origin, 1, "
        "lease_seconds, 1, '{}', 2, :d, 'completed', created_at, updated_at, updated_at FROM integrity_ledger",
        d="0" * 64,
    )
    # Its own transitions still work, and renewals still move the lease on without a history row.
    renewed = ledger.renew(claim.lease)
    assert renewed.expires_at >= claim.lease.expires_at
    ledger.complete(renewed, {"ok": True})
    assert [h.event for h in ledger.history(KEY)] == ["claimed", "completed"]


def test_stored_results_of_large_values_cannot_be_changed_or_deleted(ledger: IdempotencyLedger) -> None:
    _completed(ledger, ["x"] * 40_000)
    _refused(ledger.store, "UPDATE integrity_ledger_blob SET body = :b", b=b"[]")
    _refused(ledger.store, "DELETE FROM integrity_ledger_blob")
    if ledger.store.backend == "postgresql":
        for table in ("integrity_ledger", "integrity_ledger_blob"):
            _refused(ledger.store, f"TRUNCATE {table}")
    assert ledger.claim(KEY, fingerprint=INPUTS).result == ["x"] * 40_000


def test_with_the_triggers_removed_an_edited_inline_result_is_caught_on_replay(ledger: IdempotencyLedger) -> None:
    _completed(ledger)
    _drop_ledger_triggers(ledger.store)
    _sql(ledger.store, "UPDATE integrity_ledger SET result_json = :r", r=json.dumps({"iban": "GB33 BUKB"}))
    with pytest.raises(ResultCorruptedError, match=r"'claim-42'.*does not match its recorded SHA-256"):
        ledger.claim(KEY, fingerprint=INPUTS)
    entry = ledger.get(KEY)
    assert entry is not None and entry.state is State.COMPLETED


def test_a_change_whose_check_comes_out_null_is_refused(ledger: IdempotencyLedger) -> None:
    _completed(ledger)
    # A release that looks right but leaves the previous state unknown: NULL never counts as allowed.
    _refused(
        ledger.store,
        "UPDATE integrity_ledger SET state = 'released', last_event = 'released', previous_state = NULL, "
        "previous_holder = holder, retryable = NULL, lease_expires_at = NULL, last_person = 'x', "
        "last_reason = 'y'",
    )
    assert ledger.claim(KEY, fingerprint=INPUTS).status is ClaimStatus.REPLAY


def test_the_history_takes_no_transition_written_as_a_note(ledger: IdempotencyLedger) -> None:
    if ledger.store.backend == "sqlite":
        pytest.skip("SQLite has no functions; its history is written by triggers")
    claim = ledger.claim(KEY, fingerprint=INPUTS)
    assert claim.lease is not None
    with pytest.raises(DBAPIError, match="is not a note of the idempotency ledger"):
        _sql(
            ledger.store,
            "SELECT integrity_ledger_note('payments', :k, 'completed', NULL, NULL, :details)",
            k=KEY,
            details='{"payment_id": "PAY-FAKE"}',
        )
    assert [h.event for h in ledger.history(KEY)] == ["claimed"]
