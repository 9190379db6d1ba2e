"""Audit events: validation with errors that name the offending item, and append on both backends."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from airflow_integrity.audit import fingerprint
from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.checkpoints import create_checkpoint
from airflow_integrity.store.audit.event import (
    GENESIS_HASH,
    MAX_DETAILS_BYTES,
    AuditEvent,
    AuditEventError,
)
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.schema import AUDIT_TABLES, EVENT, INTAKE
from airflow_integrity.store.audit.signing import CheckpointKey
from airflow_integrity.store.audit.verify import verify


def event(**overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "event_type": "task_instance.success",
        "actor": "worker-1@host-a",
        "dag_id": "claims",
        "run_id": "manual__1",
        "task_id": "pay",
        "map_index": -1,
        "try_number": 1,
        "business_key": "claim-42",
        "details": {"state": "success"},
    }
    fields.update(overrides)
    return AuditEvent(**fields)  # type: ignore[arg-type]


@pytest.mark.unit
def test_fingerprint_hashes_bytes_text_and_canonical_json() -> None:
    assert fingerprint(b"abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert fingerprint("é") == "sha256:" + hashlib.sha256("é".encode()).hexdigest()
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) == "sha256:" + hashlib.sha256(b'{"a":1}').hexdigest()
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


@pytest.mark.unit
@pytest.mark.parametrize(
    ("details", "named", "problem"),
    [
        ({"payload": {"rows": [1, b"raw"]}}, "details['payload']['rows'][1]", "bytes"),
        ({"ratio": float("nan")}, "details['ratio']", "nan"),
        ({"when": datetime(2026, 1, 1)}, "details['when']", "datetime"),
        ({"ids": {1, 2}}, "details['ids']", "set"),
        ({"nested": {1: "x", "a": "y"}}, "details['nested']", "key 1"),
        ({"notes": ["ok", "a\x00b"]}, "details['notes'][1]", "NUL"),
    ],
)
def test_details_that_are_not_json_are_refused_naming_the_key(details: dict, named: str, problem: str) -> None:
    with pytest.raises(AuditEventError) as caught:
        event(details=details).prepare()
    message = str(caught.value)
    assert named in message and problem in message
    assert "fingerprint" in message


@pytest.mark.unit
def test_details_over_the_size_limit_name_the_largest_keys() -> None:
    with pytest.raises(AuditEventError) as caught:
        event(details={"small": 1, "rows": ["x" * 100] * 70, "big": "y" * MAX_DETAILS_BYTES}).prepare()
    message = str(caught.value)
    assert str(MAX_DETAILS_BYTES) in message
    assert message.index("'big'") < message.index("'rows'")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"event_type": ""}, "event_type"),
        ({"actor": None}, "actor"),
        ({"dag_id": "d" * 251}, "dag_id"),
        ({"run_id": 7}, "run_id"),
        ({"task_id": "a\x00b"}, "task_id"),
        ({"map_index": True}, "map_index"),
        ({"try_number": "1"}, "try_number"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"details": ["a"]}, "dict"),
    ],
)
def test_invalid_fields_are_refused_naming_the_field(overrides: dict, named: str) -> None:
    with pytest.raises(AuditEventError, match=named):
        event(**overrides).prepare()


@pytest.mark.unit
def test_canonical_body_is_sorted_compact_json_of_the_fields() -> None:
    prepared = event(details={"z": [1, "é\n"], "a": None}).prepare()
    body = prepared.body("2026-11-28T09:30:00.000001Z")
    fields = {**prepared.columns(), "details": {"z": [1, "é\n"], "a": None}}
    fields["recorded_at"] = "2026-11-28T09:30:00.000001Z"
    assert body == json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.integration
def test_an_empty_trail_verifies(store: IntegrityStore) -> None:
    result = verify(store)
    assert (result.ok, result.count, result.head_seq, result.head_hash) == (True, 0, 0, GENESIS_HASH)


@pytest.mark.integration
def test_append_returns_the_chained_durable_record(store: IntegrityStore) -> None:
    log = AuditLog(store)
    before = datetime.now(UTC)
    first = log.append(event())
    second, third = log.append_many([event(task_id="notify"), event(task_id="close", business_key=None)])
    assert [r.seq for r in (first, second, third)] == [1, 2, 3]
    assert first.prev_hash == GENESIS_HASH
    assert (second.prev_hash, third.prev_hash) == (first.hash, second.hash)
    for record in (first, second, third):
        assert record.computed_hash() == record.hash
        assert before - timedelta(minutes=1) < record.recorded_at < datetime.now(UTC) + timedelta(minutes=1)
    assert third.business_key is None and third.task_id == "close"
    assert log.head().seq == 3 and log.head().hash == third.hash
    result = verify(store)
    assert (result.ok, result.count, result.head_hash) == (True, 3, third.hash)


@pytest.mark.integration
def test_appending_the_same_event_id_again_records_it_once(store: IntegrityStore) -> None:
    log = AuditLog(store)
    original = log.append(event(event_id="6f1c1f6e-2a7d-4c1e-9d53-3f3e6c1a0b11"))
    log.append(event(task_id="other"))
    again = log.append(event(event_id="6f1c1f6e-2a7d-4c1e-9d53-3f3e6c1a0b11"))
    assert again == original
    with pytest.raises(AuditEventError, match="already recorded"):
        log.append(event(event_id="6f1c1f6e-2a7d-4c1e-9d53-3f3e6c1a0b11", actor="someone-else"))
    assert log.head().seq == 2 and verify(store).ok


@pytest.mark.integration
def test_record_is_durable_at_once_and_chained_in_a_batch(store: IntegrityStore) -> None:
    log = AuditLog(store)
    first = log.record(event(details={"i": 0}), batch=1000, chain_within=None)
    receipts = log.record_many([event(details={"i": i}) for i in range(1, 6)], batch=1000, chain_within=None)
    result = verify(store)
    assert result.ok
    if store.backend == "sqlite":
        assert first.chained and [r.seq for r in receipts] == [2, 3, 4, 5, 6] and result.head_seq == 6
        return
    # The first record of a process chains what waits; the next ones wait for a batch (or a second).
    assert result.head_seq == 1 and result.pending == 5
    assert not any(r.chained for r in receipts)
    again = log.record(event(event_id=receipts[0].event_id, details={"i": 1}), chain_within=None)
    assert again.recorded_at == receipts[0].recorded_at
    with pytest.raises(AuditEventError, match="already recorded"):
        log.record(event(event_id=receipts[0].event_id, details={"i": -1}), chain_within=None)
    assert log.chain_pending() == 5
    records = {seq: r for seq, r in iter_records(store)}
    assert [records[seq].details["i"] for seq in sorted(records)] == [0, 1, 2, 3, 4, 5]
    assert verify(store).pending == 0
    # intake ids 7..10: 10 % 5 == 0
    log.record_many([event(details={"i": i}) for i in range(6, 10)], batch=5, chain_within=None)
    assert verify(store).head_seq == 10


@pytest.mark.integration
def test_what_a_process_recorded_and_left_unchained_is_chained_soon_by_itself(pg_database: str) -> None:
    store = IntegrityStore(StoreLocation.from_url(pg_database))
    store.migrate()
    log = AuditLog(store)
    log.record(event(details={"i": 0}))  # a process's first record chains what waits
    receipts = log.record_many([event(details={"i": i}) for i in range(1, 4)], batch=1000, chain_within=0.2)
    assert not any(r.chained for r in receipts)
    deadline = time.monotonic() + 30
    while verify(store).pending and time.monotonic() < deadline:
        time.sleep(0.05)
    result = verify(store)
    assert result.ok and result.pending == 0 and result.head_seq == 4, result.summary()


def _record_and_exit(url: str, count: int, kill: bool) -> None:
    log = AuditLog(IntegrityStore(StoreLocation.from_url(url)))
    log.record(event(details={"i": -1}))
    for i in range(count):
        log.record(event(details={"i": i}), batch=1000, chain_within=600)
    if kill:
        os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.integration
def test_a_process_that_exits_chains_what_it_recorded_and_one_killed_leaves_it_to_the_next(
    pg_database: str,
) -> None:
    store = IntegrityStore(StoreLocation.from_url(pg_database))
    store.migrate()
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_record_and_exit, args=(pg_database, 3, False))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0
    result = verify(store)
    assert result.ok and result.pending == 0 and result.head_seq == 4, result.summary()

    proc = ctx.Process(target=_record_and_exit, args=(pg_database, 3, True))
    proc.start()
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL
    result = verify(store)
    assert result.ok and result.pending == 3 and result.head_seq == 5, result.summary()
    assert "3 recorded event(s) not chained yet" in result.summary()
    assert any("not chained yet" in warning for warning in result.warnings)
    AuditLog(store).record(event(details={"i": "next"}), chain_within=None)  # the first record of this process
    result = verify(store)
    assert result.ok and result.pending == 0 and result.head_seq == 9, result.summary()


@pytest.mark.requirement("part11.11.10c")
@pytest.mark.integration
def test_update_delete_and_truncate_are_refused_on_every_audit_table(store: IntegrityStore) -> None:
    AuditLog(store).append(event())
    create_checkpoint(store, CheckpointKey.hmac_sha256(b"k" * 32))
    columns = {EVENT: "prev_hash", INTAKE: "actor", "integrity_audit_checkpoint": "key_id"}
    statements = []
    for table in AUDIT_TABLES[store.backend]:
        statements += [f"UPDATE {table} SET {columns[table]} = 'x'", f"DELETE FROM {table}"]
        if store.backend == "postgresql":
            statements.append(f"TRUNCATE {table}")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), store.begin() as conn:
            conn.execute(text(statement))
    with store.read() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {EVENT}")).scalar_one() == 1
    assert verify(store).ok


@pytest.mark.integration
def test_the_receipt_of_an_event_chained_in_the_same_call_gives_its_place(store: IntegrityStore) -> None:
    from airflow_integrity.store.audit import chain as audit_chain

    audit_chain._last_chained.clear()  # this process has not chained lately: the call chains what is pending
    receipt = AuditLog(store).record(event(business_key="claim-1"))
    assert receipt.chained and receipt.seq == 1
    (stored,) = [r for _, r in iter_records(store) if not isinstance(r, str)]
    assert (stored.event_id, stored.hash, stored.prev_hash) == (receipt.event_id, receipt.hash, receipt.prev_hash)


@pytest.mark.requirement("alcoa.contemporaneous", "part11.11.10e")
@pytest.mark.integration
def test_event_times_come_from_the_store_not_from_the_writing_code(
    store: IntegrityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_integrity.store.audit import chain as audit_chain

    class _StoppedClock(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def,override]
            return datetime(2001, 1, 1, tzinfo=UTC)

    # A writer whose own clock (or code) says 2001: the trail keeps the store's time.
    monkeypatch.setattr(audit_chain, "datetime", _StoppedClock)
    AuditLog(store).append(event())
    AuditLog(store).record(event())
    AuditLog(store).chain_pending()
    times = [r.recorded_at for _, r in iter_records(store) if not isinstance(r, str)]
    assert len(times) == 2
    assert all(abs(t - datetime.now(UTC)) < timedelta(minutes=1) for t in times), times
