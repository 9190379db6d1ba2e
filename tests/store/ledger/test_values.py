"""What enters the ledger: canonical fingerprints, key limits, results that must replay exactly, results
stored by reference and read back intact, and errors that name the key and the fix."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import time
import uuid

import pytest
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore
from airflow_integrity.store.ledger.codec import MAX_KEY_LENGTH, bound_error, inputs_digest
from airflow_integrity.store.ledger.entries import (
    ClaimStatus,
    InvalidKeyError,
    LedgerInputError,
    ResultCorruptedError,
    ResultNotSerializableError,
    ResultTooLargeError,
    StaleHolderError,
)
from airflow_integrity.store.ledger.ledger import INLINE_RESULT_BYTES, IdempotencyLedger

INPUTS = inputs_digest({"claim_id": 42})


@pytest.fixture
def ledger(store: IntegrityStore) -> IdempotencyLedger:
    with IdempotencyLedger(store, namespace="payments") as ledger:
        yield ledger


@pytest.mark.unit
def test_fingerprint_is_canonical_and_tells_types_apart() -> None:
    assert inputs_digest({"a": 1, "b": [1, 2]}) == inputs_digest({"b": [1, 2], "a": 1})
    assert inputs_digest((1, 2)) == inputs_digest([1, 2])
    assert inputs_digest({3, 1, 2}) == inputs_digest({2, 3, 1})
    distinct = [
        "1",
        1,
        1.0,
        True,
        None,
        decimal.Decimal("1"),
        [1],
        {"1": 1},
        b"1",
        dt.date(2026, 1, 1),
        "2026-01-01",
        uuid.UUID(int=1),
        {1},
    ]
    assert len({inputs_digest(value) for value in distinct}) == len(distinct)
    digest = inputs_digest({"claim_id": 42})
    assert len(digest) == 64 and int(digest, 16) >= 0
    # A fingerprint depends on the inputs only: here is the SHA-256 of the canonical JSON text.
    assert digest == hashlib.sha256(b'{"claim_id":42}').hexdigest()


@pytest.mark.unit
def test_no_dict_of_the_inputs_fingerprints_like_a_typed_value() -> None:
    import base64

    from airflow_integrity.store.ledger.codec import legacy_fingerprint

    look_alikes = [
        ({"$decimal": "100.00"}, decimal.Decimal("100.00")),
        ({"$bytes": base64.b64encode(b"IBAN").decode()}, b"IBAN"),
        ({"$set": [1, 2]}, {1, 2}),
        ({"$uuid": "12345678-1234-5678-1234-567812345678"}, uuid.UUID("12345678-1234-5678-1234-567812345678")),
        ({"amount": {"$decimal": "1"}}, {"amount": decimal.Decimal("1")}),
    ]
    for lookalike, typed in look_alikes:
        assert inputs_digest(lookalike) != inputs_digest(typed), lookalike
        # The earlier scheme confused them; it is kept so that keys claimed with it stay recognisable.
        assert inputs_digest(lookalike, scheme=1) == inputs_digest(typed, scheme=1)
        assert legacy_fingerprint(lookalike) == inputs_digest(lookalike, scheme=1)
    # Inputs without a "$" key fingerprint alike in both schemes: nothing stored before changes meaning.
    plain = {"claim_id": 42, "amount": decimal.Decimal("9.99"), "when": dt.date(2026, 1, 1), "tags": {"a"}}
    assert inputs_digest(plain) == inputs_digest(plain, scheme=1) and legacy_fingerprint(plain) is None
    assert inputs_digest({"$$x": 1}) != inputs_digest({"$x": 1})


@pytest.mark.integration
def test_a_key_claimed_in_the_earlier_fingerprint_scheme_still_replays_to_its_inputs(store_url: str) -> None:
    from airflow_integrity.store import StoreLocation, migrate
    from airflow_integrity.store.ledger.codec import legacy_fingerprint

    inputs = {"amount": {"$decimal": "100.00"}}  # a caller's dict that scheme 1 read as Decimal("100.00")
    store = IntegrityStore(StoreLocation.from_url(store_url))
    migrate.upgrade(store.engine, revision="l1")
    with store.begin() as conn:  # the key as the earlier version left it: completed, scheme-1 fingerprint
        conn.execute(
            text(
                "INSERT INTO integrity_ledger (namespace, idempotency_key, fingerprint, state, holder, origin, "
                "fencing_token, lease_seconds, attempts, result_json, result_size, result_sha256, last_event, "
                "created_at, updated_at, completed_at) VALUES ('payments', 'claim-1', :f, 'completed', '{}', "
                "'{}', 1, 60, 1, '\"paid\"', 6, :s, 'completed', '2026-01-01 00:00:00.000', "
                "'2026-01-01 00:00:00.000', '2026-01-01 00:00:00.000')"
            ),
            {"f": inputs_digest(inputs, scheme=1), "s": hashlib.sha256(b'"paid"').hexdigest()},
        )
    store.migrate()
    with IdempotencyLedger(store, namespace="payments") as ledger:
        again = ledger.claim(
            "claim-1", fingerprint=inputs_digest(inputs), legacy_fingerprint=legacy_fingerprint(inputs)
        )
        assert (again.status, again.result) == (ClaimStatus.REPLAY, "paid")
        entry = ledger.get("claim-1")
        assert entry is not None and entry.fingerprint_scheme == 1
        # A new key is stored in the current scheme, which tells the look-alike inputs apart.
        fresh = ledger.claim("claim-2", fingerprint=inputs_digest(inputs))
        assert fresh.lease is not None
        ledger.complete(fresh.lease, "paid")
        other = {"amount": decimal.Decimal("100.00")}
        assert ledger.claim("claim-2", fingerprint=inputs_digest(other)).status is ClaimStatus.MISMATCH
        assert fresh.entry.fingerprint_scheme == 2


@pytest.mark.unit
def test_fingerprint_refuses_values_without_a_canonical_form_and_names_where_they_are() -> None:
    with pytest.raises(LedgerInputError, match=r"inputs\['payer'\]\[1\].*object.*has no canonical form"):
        inputs_digest({"payer": ["x", object()]})
    with pytest.raises(LedgerInputError, match=r"inputs\['amount'\].*not a finite number"):
        inputs_digest({"amount": float("nan")})
    with pytest.raises(LedgerInputError, match="use string keys"):
        inputs_digest({1: "a"})


@pytest.mark.integration
@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        (None, "not a string"),
        ("k" * (MAX_KEY_LENGTH + 1), "the limit is 512"),
    ],
)
def test_bad_keys_are_refused_with_the_key_and_the_fix(
    ledger: IdempotencyLedger, key: object, problem: str
) -> None:
    with pytest.raises(InvalidKeyError) as err:
        ledger.claim(key, fingerprint=INPUTS)  # type: ignore[arg-type]
    message = str(err.value)
    assert problem in message
    assert "namespace 'payments'" in message
    assert "for example" in message  # how to fix it
    if isinstance(key, str) and len(key) > 80:
        assert "kkkk" in message and "…" in message and len(message) < 400
    assert _row_count(ledger) == 0


def _row_count(ledger: IdempotencyLedger) -> int:
    with ledger.store.read() as conn:
        return int(conn.execute(text("SELECT count(*) FROM integrity_ledger")).scalar_one())


@pytest.mark.integration
def test_the_longest_allowed_key_and_any_unicode_are_stored_exactly(ledger: IdempotencyLedger) -> None:
    for key in ("ü" * MAX_KEY_LENGTH, "claim-42 / Zahlung 🧾 #1"):
        claim = ledger.claim(key, fingerprint=INPUTS)
        assert claim.status is ClaimStatus.CLAIMED
        entry = ledger.get(key)
        assert entry is not None and entry.key == key


@pytest.mark.integration
def test_bad_fingerprints_are_refused(ledger: IdempotencyLedger) -> None:
    for bad in ("", "abc", INPUTS.upper(), INPUTS[:-1] + "g"):
        with pytest.raises(LedgerInputError, match=r"inputs_digest\(inputs\)"):
            ledger.claim("claim-42", fingerprint=bad)


@pytest.mark.integration
def test_a_result_that_would_not_replay_exactly_is_refused_and_the_key_stays_claimable(
    ledger: IdempotencyLedger,
) -> None:
    claim = ledger.claim("claim-42", fingerprint=INPUTS)
    assert claim.lease is not None
    cases = [
        ({"paid_at": dt.datetime(2026, 11, 28)}, r"result\['paid_at'\] is a datetime.datetime"),
        ({"amount": decimal.Decimal("1.10")}, r"result\['amount'\] is a decimal.Decimal"),
        ({"lines": {1: "a"}}, r"result\['lines'\] has the key 1 \(int\)"),
        ([1, float("inf")], r"result\[1\] is inf"),
        ({"a": [{"b": {2.5}}]}, r"result\['a'\]\[0\]\['b'\] is a builtins.set"),
        (_cyclic(), r"result is nested too deeply or contains itself"),
    ]
    for result, problem in cases:
        with pytest.raises(ResultNotSerializableError, match=problem) as err:
            ledger.complete(claim.lease, result)
        assert "'claim-42'" in str(err.value) and ".isoformat()" in str(err.value)
    entry = ledger.get("claim-42")
    assert entry is not None and entry.state.value == "in_progress"
    ledger.complete(claim.lease, {"paid_at": "2026-11-28T00:00:00", "amount": "1.10", "lines": {"1": "a"}})
    replay = ledger.claim("claim-42", fingerprint=INPUTS)
    assert replay.result == {"paid_at": "2026-11-28T00:00:00", "amount": "1.10", "lines": {"1": "a"}}


def _cyclic() -> list[object]:
    loop: list[object] = []
    loop.append(loop)
    return loop


@pytest.mark.integration
def test_a_large_result_is_stored_by_reference_and_read_back_intact(ledger: IdempotencyLedger) -> None:
    result = {
        "rows": [{"id": i, "name": f"patient-{i}", "note": "ä" * (i % 7)} for i in range(4000)],
        "total": 4000,
    }
    size = len(json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode())
    assert size > 3 * INLINE_RESULT_BYTES == 3 * ledger.inline_result_bytes
    claim = ledger.claim("claim-42", fingerprint=INPUTS)
    assert claim.lease is not None
    done = ledger.complete(claim.lease, result)
    assert done.stored_by_reference and done.result_size == size

    replay = ledger.claim("claim-42", fingerprint=INPUTS)
    assert replay.status is ClaimStatus.REPLAY and replay.result == result
    entry = ledger.get("claim-42")
    assert entry is not None and entry.result_by_reference and entry.result_size == size
    assert ledger.load_result(entry) == result
    with ledger.store.read() as conn:
        inline = conn.execute(text("SELECT result_json FROM integrity_ledger")).scalar_one()
        blobs = conn.execute(text("SELECT size FROM integrity_ledger_blob")).scalars().all()
    assert inline is None and blobs == [size]

    small = ledger.claim("claim-43", fingerprint=INPUTS)
    assert small.lease is not None
    assert not ledger.complete(small.lease, {"ok": True}).stored_by_reference


@pytest.mark.integration
def test_a_stale_holder_leaves_no_large_result_behind(ledger: IdempotencyLedger) -> None:
    stale = ledger.claim("claim-42", fingerprint=INPUTS, lease_seconds=0.2)
    assert stale.lease is not None
    time.sleep(0.3)
    current = ledger.claim("claim-42", fingerprint=INPUTS)
    assert current.lease is not None
    with pytest.raises(StaleHolderError, match="fencing token 1"):
        ledger.complete(stale.lease, "x" * 100_000)
    with ledger.store.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM integrity_ledger_blob")).scalar_one() == 0


@pytest.mark.integration
def test_a_result_beyond_the_maximum_is_refused_not_shortened(store: IntegrityStore) -> None:
    with IdempotencyLedger(store, max_result_bytes=10_000) as ledger:
        claim = ledger.claim("claim-42", fingerprint=INPUTS)
        assert claim.lease is not None
        with pytest.raises(ResultTooLargeError, match=r"'claim-42'.*10,00\d bytes.*at most 10,000.*reference"):
            ledger.complete(claim.lease, "x" * 10_000)
        assert ledger.complete(claim.lease, "x" * 9_000).result_size == 9_002


@pytest.mark.integration
def test_an_altered_stored_result_is_detected_on_replay(ledger: IdempotencyLedger) -> None:
    claim = ledger.claim("claim-42", fingerprint=INPUTS)
    assert claim.lease is not None
    ledger.complete(claim.lease, ["x"] * 20_000)
    with ledger.store.begin() as conn:
        # The blob table refuses changes; its owner (or whoever can write the SQLite file) can lift that.
        if ledger.store.backend == "postgresql":
            conn.execute(text("ALTER TABLE integrity_ledger_blob DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER integrity_ledger_blob_no_update"))
        conn.execute(
            text("UPDATE integrity_ledger_blob SET body = :b"), {"b": json.dumps(["y"] * 20_000).encode()}
        )
    with pytest.raises(ResultCorruptedError, match=r"'claim-42'.*does not match its recorded SHA-256"):
        ledger.claim("claim-42", fingerprint=INPUTS)


@pytest.mark.unit
def test_long_errors_are_shortened_visibly() -> None:
    assert bound_error("short") == "short"
    long = bound_error("e" * 20_000)
    assert len(long) <= 8192 and long.endswith("[shortened: 20,000 characters in all]")
