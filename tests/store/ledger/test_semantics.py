"""The ledger's decisions, identical on SQLite and PostgreSQL: claim, replay, busy, mismatch, takeover,
stale holders, retryable and permanent failures, release, expiry and the history of every transition."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore
from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.entries import (
    ClaimStatus,
    KeyNotFoundError,
    LedgerInputError,
    ReleaseRefusedError,
    StaleHolderError,
)
from airflow_integrity.store.ledger.ledger import IdempotencyLedger

pytestmark = pytest.mark.integration

FIRST = {"dag_id": "claims", "run_id": "manual__1", "task_id": "pay", "try_number": 1}
SECOND = {"dag_id": "claims", "run_id": "manual__2", "task_id": "pay", "try_number": 1}
INPUTS = inputs_digest({"claim_id": 42, "amount": "125.40"})


@pytest.fixture
def ledger(store: IntegrityStore) -> IdempotencyLedger:
    with IdempotencyLedger(store, namespace="payments") as ledger:
        yield ledger


def _db_now(store: IntegrityStore):  # type: ignore[no-untyped-def]
    from airflow_integrity.store.ledger.rows import timestamp

    clock = "now()" if store.backend == "postgresql" else "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    with store.read() as conn:
        return timestamp(conn.execute(text(f"SELECT {clock}")).scalar_one())


def test_first_claim_proceeds_and_a_second_claimant_is_told_to_wait(ledger: IdempotencyLedger) -> None:
    first = ledger.claim("claim-42", fingerprint=INPUTS, holder=FIRST, lease_seconds=30)
    assert first.status is ClaimStatus.CLAIMED and first.proceed
    assert first.lease is not None and first.lease.fencing_token == 1
    assert first.event == "claimed"
    # The lease runs on the database's clock.
    now = _db_now(ledger.store)
    assert 28 < (first.lease.expires_at - now).total_seconds() <= 30

    second = ledger.claim("claim-42", fingerprint=INPUTS, holder=SECOND)
    assert second.status is ClaimStatus.BUSY and not second.proceed
    assert second.lease is None
    assert second.entry.holder["run_id"] == "manual__1"
    assert second.retry_after is not None and 25 < second.retry_after <= 30
    assert "manual__1" in second.message and "wait" in second.message
    assert second.audit_details()["holder"]["run_id"] == "manual__1"
    assert second.event == "conflict"


@pytest.mark.requirement("alcoa.original")
def test_completed_key_replays_its_stored_result_to_every_later_claim(ledger: IdempotencyLedger) -> None:
    first = ledger.claim("claim-42", fingerprint=INPUTS, holder=FIRST)
    assert first.lease is not None
    result = {"payment_id": "PAY-9", "amount": "125.40", "lines": [1, 2.5, None, True, "ü"]}
    done = ledger.complete(first.lease, result)
    assert not done.stored_by_reference
    assert done.result_size == len(json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode())

    for holder in (SECOND, FIRST):
        replay = ledger.claim("claim-42", fingerprint=INPUTS, holder=holder)
        assert replay.status is ClaimStatus.REPLAY and not replay.proceed
        assert replay.result == result
        assert replay.entry.holder["run_id"] == "manual__1"
        details = replay.audit_details()
        assert details["result_sha256"] == done.result_sha256
        assert "payment_id" not in str(details)  # fingerprints in the audit, never the result
    events = [(h.event, h.state) for h in ledger.history("claim-42")]
    assert events == [
        ("claimed", "in_progress"),
        ("completed", "completed"),
        ("replayed", "completed"),
        ("replayed", "completed"),
    ]
    entry = ledger.get("claim-42")
    assert entry is not None and entry.completed_at is not None and entry.lease_expires_at is None


def test_same_key_with_other_inputs_is_a_mismatch_naming_both_fingerprints_and_the_origin(
    ledger: IdempotencyLedger,
) -> None:
    first = ledger.claim("claim-42", fingerprint=INPUTS, holder=FIRST)
    other = inputs_digest({"claim_id": 42, "amount": "999.00"})
    while_running = ledger.claim("claim-42", fingerprint=other, holder=SECOND)
    assert while_running.status is ClaimStatus.MISMATCH
    assert first.lease is not None
    ledger.complete(first.lease, {"paid": True})

    mismatch = ledger.claim("claim-42", fingerprint=other, holder=SECOND)
    assert mismatch.status is ClaimStatus.MISMATCH and not mismatch.proceed
    assert mismatch.event == "fingerprint_mismatch"
    for text_ in (INPUTS, other, "dag_id=claims", "run_id=manual__1", "task_id=pay", "release"):
        assert text_ in mismatch.message
    details = mismatch.audit_details()
    assert (details["stored_fingerprint"], details["fingerprint"]) == (INPUTS, other)
    assert details["origin"]["run_id"] == "manual__1"
    history = ledger.history("claim-42")
    noted = [h for h in history if h.event == "fingerprint_mismatch"]
    assert [h.fingerprint for h in noted] == [other, other]
    assert noted[-1].holder is not None and noted[-1].holder["run_id"] == "manual__2"
    # The refused attempt changed nothing.
    assert ledger.claim("claim-42", fingerprint=INPUTS).result == {"paid": True}


def test_retryable_failure_reopens_the_key_and_a_permanent_one_refuses_until_released(
    ledger: IdempotencyLedger,
) -> None:
    first = ledger.claim("claim-42", fingerprint=INPUTS, holder=FIRST)
    assert first.lease is not None
    failed = ledger.fail(first.lease, ConnectionError("payment API timed out"), retryable=True)
    assert failed.retryable and failed.event == "failed"

    retry = ledger.claim("claim-42", fingerprint=INPUTS, holder=SECOND)
    assert retry.status is ClaimStatus.CLAIMED
    assert retry.lease is not None and retry.lease.fencing_token == 2
    assert retry.entry.previous_state == "failed" and retry.entry.error is None
    ledger.fail(retry.lease, "card declined: account closed", retryable=False)

    for _ in range(2):
        refused = ledger.claim("claim-42", fingerprint=INPUTS, holder=SECOND)
        assert refused.status is ClaimStatus.FAILED_PERMANENTLY and not refused.proceed
        assert "account closed" in refused.message and "release" in refused.message
        assert refused.audit_details()["error"] == "card declined: account closed"

    released = ledger.release("claim-42", reason="customer reopened the account", person="j.doe")
    assert (released.previous_state, released.person, released.event) == ("failed", "j.doe", "released")
    again = ledger.claim("claim-42", fingerprint=INPUTS, holder=SECOND)
    assert again.status is ClaimStatus.CLAIMED
    assert again.lease is not None and again.lease.fencing_token == 3
    events = [(h.event, h.fencing_token, h.error) for h in ledger.history("claim-42")]
    assert events == [
        ("claimed", 1, None),
        ("failed", 1, "payment API timed out"),
        ("claimed", 2, None),
        ("failed", 2, "card declined: account closed"),
        ("released", 2, "card declined: account closed"),
        ("claimed", 3, None),
    ]


def test_dead_holder_is_taken_over_and_can_no_longer_renew_complete_or_fail(ledger: IdempotencyLedger) -> None:
    dead = ledger.claim("claim-42", fingerprint=INPUTS, holder=FIRST, lease_seconds=0.3)
    assert dead.lease is not None
    assert ledger.claim("claim-42", fingerprint=INPUTS, holder=SECOND).status is ClaimStatus.BUSY
    time.sleep(0.45)

    takeover = ledger.claim("claim-42", fingerprint=INPUTS, holder=SECOND)
    assert takeover.status is ClaimStatus.TAKEOVER and takeover.proceed
    assert takeover.lease is not None and takeover.lease.fencing_token == 2
    assert takeover.entry.previous_holder is not None and takeover.entry.previous_holder["run_id"] == "manual__1"
    assert "manual__1" in takeover.message
    assert takeover.audit_details()["previous_holder"]["run_id"] == "manual__1"

    for action in (
        lambda: ledger.renew(dead.lease),
        lambda: ledger.fail(dead.lease, "late", retryable=True),
        lambda: ledger.complete(dead.lease, {"by": "stale"}),
    ):
        with pytest.raises(StaleHolderError) as refusal:
            action()
        assert refusal.value.entry is not None and refusal.value.entry.fencing_token == 2
        assert refusal.value.audit_details()["stale_fencing_token"] == 1
    ledger.complete(takeover.lease, {"by": "takeover"})
    with pytest.raises(StaleHolderError, match="is completed"):
        ledger.complete(takeover.lease, {"by": "twice"})
    assert ledger.claim("claim-42", fingerprint=INPUTS).result == {"by": "takeover"}
    refused = [h.details["refused"] for h in ledger.history("claim-42") if h.event == "stale_holder_refused"]
    assert refused == ["renew its lease", "record its failure", "complete it", "complete it"]


def test_a_holder_whose_lease_lapsed_without_a_takeover_may_still_complete(ledger: IdempotencyLedger) -> None:
    slow = ledger.claim("claim-42", fingerprint=INPUTS, holder=FIRST, lease_seconds=0.2)
    assert slow.lease is not None
    time.sleep(0.3)
    assert ledger.complete(slow.lease, "done").fencing_token == 1
    assert ledger.claim("claim-42", fingerprint=INPUTS).status is ClaimStatus.REPLAY


def test_renewal_extends_the_lease_on_the_database_clock_and_writes_no_history(ledger: IdempotencyLedger) -> None:
    claim = ledger.claim("claim-42", fingerprint=INPUTS, holder=FIRST, lease_seconds=0.5)
    assert claim.lease is not None
    lease = claim.lease
    for _ in range(4):
        time.sleep(0.2)
        renewed = ledger.renew(lease)
        assert renewed.expires_at > lease.expires_at
        lease = renewed
    # 0.8 s after the claim, a 0.5 s lease is alive only because it was renewed.
    assert ledger.claim("claim-42", fingerprint=INPUTS, holder=SECOND).status is ClaimStatus.BUSY
    assert [h.event for h in ledger.history("claim-42")] == ["claimed"]


def test_release_is_refused_for_live_unknown_or_released_keys_and_needs_person_and_reason(
    ledger: IdempotencyLedger,
) -> None:
    with pytest.raises(KeyNotFoundError, match="'claim-404'"):
        ledger.release("claim-404", reason="r", person="p")
    live = ledger.claim("claim-42", fingerprint=INPUTS, holder=FIRST)
    with pytest.raises(ReleaseRefusedError, match=r"run_id=manual__1.*twice"):
        ledger.release("claim-42", reason="r", person="p")
    assert live.lease is not None
    ledger.complete(live.lease, 1)
    with pytest.raises(LedgerInputError, match="reason"):
        ledger.release("claim-42", reason=" ", person="p")
    with pytest.raises(LedgerInputError, match="person"):
        ledger.release("claim-42", reason="r", person="")
    ledger.release("claim-42", reason="paid to the wrong account", person="a.auditor")
    with pytest.raises(ReleaseRefusedError, match=r"already released \(by a.auditor: paid to the wrong account\)"):
        ledger.release("claim-42", reason="again", person="b")
    released = [h for h in ledger.history("claim-42") if h.event == "released"]
    assert [(h.person, h.reason, h.previous_state) for h in released] == [
        ("a.auditor", "paid to the wrong account", "completed")
    ]


def test_a_dead_holders_key_can_be_released_and_the_dead_holder_stays_refused(ledger: IdempotencyLedger) -> None:
    dead = ledger.claim("claim-42", fingerprint=INPUTS, holder=FIRST, lease_seconds=0.2)
    assert dead.lease is not None
    time.sleep(0.3)
    released = ledger.release("claim-42", reason="worker lost, inputs corrected", person="ops")
    assert released.previous_state == "in_progress"
    with pytest.raises(StaleHolderError, match="is released"):
        ledger.complete(dead.lease, "late")
    assert ledger.claim("claim-42", fingerprint=inputs_digest("corrected")).status is ClaimStatus.CLAIMED


def test_a_released_key_accepts_new_inputs_and_records_their_origin(ledger: IdempotencyLedger) -> None:
    wrong = ledger.claim("claim-42", fingerprint=INPUTS, holder=FIRST)
    assert wrong.lease is not None
    ledger.complete(wrong.lease, {"amount": "125.40"})
    ledger.release("claim-42", reason="amount was wrong", person="j.doe")
    fixed = inputs_digest({"claim_id": 42, "amount": "152.40"})
    claim = ledger.claim("claim-42", fingerprint=fixed, holder=SECOND)
    assert claim.status is ClaimStatus.CLAIMED
    assert claim.entry.origin["run_id"] == "manual__2"
    assert ledger.claim("claim-42", fingerprint=INPUTS).status is ClaimStatus.MISMATCH


def test_a_key_with_a_time_to_live_starts_afresh_once_expired(ledger: IdempotencyLedger) -> None:
    claim = ledger.claim("claim-42", fingerprint=INPUTS, holder=FIRST, ttl_seconds=0.4)
    assert claim.lease is not None and claim.entry.expires_at is not None
    ledger.complete(claim.lease, "first")
    assert ledger.claim("claim-42", fingerprint=INPUTS).status is ClaimStatus.REPLAY
    time.sleep(0.5)
    fresh = ledger.claim("claim-42", fingerprint=inputs_digest("other"), holder=SECOND)
    assert fresh.status is ClaimStatus.CLAIMED
    assert fresh.lease is not None and fresh.lease.fencing_token == 2
    assert fresh.entry.expires_at is None  # the new claim set no time to live: kept forever
    forever = ledger.claim("claim-7", fingerprint=INPUTS, holder=FIRST)
    assert forever.entry.expires_at is None


def test_namespaces_keep_equal_keys_apart(store: IntegrityStore) -> None:
    with IdempotencyLedger(store, namespace="payments") as payments, IdempotencyLedger(store) as default:
        assert payments.claim("42", fingerprint=INPUTS).status is ClaimStatus.CLAIMED
        assert default.claim("42", fingerprint=inputs_digest(1)).status is ClaimStatus.CLAIMED
        assert payments.claim("42", fingerprint=INPUTS, namespace="default").status is ClaimStatus.MISMATCH
    with pytest.raises(LedgerInputError, match="namespace"):
        IdempotencyLedger(store, namespace="")


@pytest.mark.requirement("part11.11.10e")
def test_history_is_append_only_in_the_database(ledger: IdempotencyLedger) -> None:
    ledger.claim("claim-42", fingerprint=INPUTS, holder=FIRST)
    for statement in ("UPDATE integrity_ledger_history SET event = 'x'", "DELETE FROM integrity_ledger_history"):
        with pytest.raises(Exception, match="append-only"), ledger.store.begin() as conn:
            conn.execute(text(statement))
    assert [h.event for h in ledger.history("claim-42")] == ["claimed"]


@pytest.mark.parametrize(
    ("lease", "ttl", "problem"),
    [
        (0, None, r"lease_seconds=0 .*'claim-42' .*not a positive, finite number"),
        (float("inf"), None, r"lease_seconds=inf .*'claim-42' .*not a positive, finite number"),
        (float("nan"), None, r"lease_seconds=nan .*'claim-42' .*not a positive, finite number"),
        (1e12, None, r"lease_seconds=1000000000000.0 .*'claim-42' .*longer than the limit of 604,800 seconds"),
        ("60", None, r"lease_seconds='60' .*'claim-42' .*is a str, not a number"),
        (True, None, r"lease_seconds=True .*'claim-42' .*is a bool"),
        (30, -1, r"ttl_seconds=-1 .*'claim-42' .*not a positive"),
        (30, float("inf"), r"ttl_seconds=inf .*'claim-42' .*not a positive, finite number"),
    ],
)
def test_bad_lease_and_time_to_live_are_refused(
    ledger: IdempotencyLedger, lease: object, ttl: object, problem: str
) -> None:
    with pytest.raises(LedgerInputError, match=problem):
        ledger.claim("claim-42", fingerprint=INPUTS, lease_seconds=lease, ttl_seconds=ttl)  # type: ignore[arg-type]
    assert ledger.get("claim-42") is None
