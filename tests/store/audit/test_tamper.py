"""The tamper matrix: every way of altering the stored trail is caught by verify, at the right sequence number.

The attacker has DDL rights: they switch off the append-only triggers (PostgreSQL ``DISABLE TRIGGER``,
SQLite ``DROP TRIGGER``) and rewrite rows directly; they know the (public) hash algorithm, not the key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from airflow_integrity.store import IntegrityStore
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.checkpoints import create_checkpoint
from airflow_integrity.store.audit.event import AuditEvent, canonical_json, chain_hash
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.schema import AUDIT_TABLES, CHECKPOINT, EVENT, INTAKE
from airflow_integrity.store.audit.signing import CheckpointKey
from airflow_integrity.store.audit.verify import (
    ALTERED_BEFORE_CHAINING,
    CHECKPOINT_MISMATCH,
    FIELD_MISMATCH,
    FORGED_INSERT,
    GAP,
    HASH_MISMATCH,
    REORDER,
    TRUNCATED,
    verify,
)

pytestmark = pytest.mark.integration
KEY_SECRET = "tamper-matrix-secret-0123456789abcdef"
KEY = CheckpointKey.hmac_sha256(KEY_SECRET)
SHIFT = 1_000_000


@contextmanager
def tampering(store: IntegrityStore) -> Iterator[Connection]:
    """A write transaction with the append-only triggers out of the way, put back afterwards."""
    tables = AUDIT_TABLES[store.backend]
    with store.begin() as conn:
        if store.backend == "postgresql":
            for table in tables:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            yield conn
            for table in tables:
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
            return
        triggers = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
        for name, _ in triggers:
            conn.execute(text(f"DROP TRIGGER {name}"))
        yield conn
        for _, sql in triggers:
            conn.exec_driver_sql(sql)


def renumber(conn: Connection, *, after: int, by: int) -> None:
    """Shift the sequence numbers of every event after ``after`` by ``by`` (in two steps: no key clash)."""
    conn.execute(text(f"UPDATE {EVENT} SET seq = seq + {SHIFT} WHERE seq > :after"), {"after": after})
    conn.execute(text(f"UPDATE {EVENT} SET seq = seq - {SHIFT} + :by WHERE seq > {SHIFT}"), {"by": by})


def body_with(conn: Connection, seq: int, **changes: object) -> str:
    """The body of event ``seq`` with some fields changed, serialised canonically (a clean edit)."""
    fields = json.loads(conn.execute(text(f"SELECT body FROM {EVENT} WHERE seq = :s"), {"s": seq}).scalar_one())
    fields.update(changes)
    return canonical_json(fields)


def hash_of(conn: Connection, seq: int) -> str:
    return conn.execute(text(f"SELECT hash FROM {EVENT} WHERE seq = :s"), {"s": seq}).scalar_one()


def rehash_from(conn: Connection, seq: int) -> None:
    """Recompute every hash from ``seq`` on, as someone who rewrites the chain consistently would."""
    prev = hash_of(conn, seq - 1) if seq > 1 else "0" * 64
    rows = conn.execute(text(f"SELECT seq, body FROM {EVENT} WHERE seq >= :s ORDER BY seq"), {"s": seq}).all()
    for number, body in rows:
        digest = chain_hash(prev, number, body.encode())
        conn.execute(
            text(f"UPDATE {EVENT} SET prev_hash = :p, hash = :h WHERE seq = :s"),
            {"p": prev, "h": digest, "s": number},
        )
        prev = digest


def record(store: IntegrityStore, count: int, start: int = 1) -> None:
    AuditLog(store).append_many(
        [
            AuditEvent(
                event_type="task_instance.success",
                actor=f"worker-{i % 3}@host",
                dag_id="claims",
                run_id=f"run-{i // 4}",
                task_id=f"step_{i}",
                business_key=f"claim-{i % 5}",
                details={"step": i},
            )
            for i in range(start, start + count)
        ]
    )


@pytest.fixture
def trail(store: IntegrityStore) -> IntegrityStore:
    record(store, 12)
    assert verify(store).ok
    return store


def assert_caught(store: IntegrityStore, seq: int, reason: str, **kwargs: object) -> None:
    result = verify(store, **kwargs)  # type: ignore[arg-type]
    assert not result.ok
    assert (result.first_bad_seq, result.reason) == (seq, reason), result.summary()
    assert result.count == seq - 1


@pytest.mark.requirement("hipaa.164.312c1", "part11.11.10a")
def test_edited_field_is_a_hash_mismatch_at_that_event(trail: IntegrityStore) -> None:
    with tampering(trail) as conn:
        conn.execute(
            text(f"UPDATE {EVENT} SET body = :b WHERE seq = 5"), {"b": body_with(conn, 5, actor="mallory")}
        )
    assert_caught(trail, 5, HASH_MISMATCH)


@pytest.mark.requirement("part11.11.70")
def test_edited_and_rehashed_event_is_caught_by_the_next_link(trail: IntegrityStore) -> None:
    with tampering(trail) as conn:
        body = body_with(conn, 5, details={"step": 500})
        digest = chain_hash(hash_of(conn, 4), 5, body.encode())
        conn.execute(text(f"UPDATE {EVENT} SET body = :b, hash = :h WHERE seq = 5"), {"b": body, "h": digest})
    assert_caught(trail, 5, HASH_MISMATCH)


@pytest.mark.requirement("alcoa.complete", "part11.11.10a")
def test_deleted_event_is_a_gap(trail: IntegrityStore) -> None:
    with tampering(trail) as conn:
        conn.execute(text(f"DELETE FROM {EVENT} WHERE seq = 6"))
    assert_caught(trail, 6, GAP)


def test_deleted_event_with_later_events_renumbered_is_a_gap(trail: IntegrityStore) -> None:
    with tampering(trail) as conn:
        conn.execute(text(f"DELETE FROM {EVENT} WHERE seq = 6"))
        renumber(conn, after=6, by=-1)
    assert_caught(trail, 6, GAP)


def test_forged_insert_with_a_valid_hash_is_named(trail: IntegrityStore) -> None:
    with tampering(trail) as conn:
        forged = body_with(conn, 4, event_id="00000000-0000-4000-8000-000000000000", actor="mallory")
        renumber(conn, after=4, by=1)
        prev = hash_of(conn, 4)
        conn.execute(
            text(f"INSERT INTO {EVENT} (seq, body, prev_hash, hash) VALUES (5, :b, :p, :h)"),
            {"b": forged, "p": prev, "h": chain_hash(prev, 5, forged.encode())},
        )
    assert_caught(trail, 5, FORGED_INSERT)


@pytest.mark.parametrize(("first", "second"), [(4, 7), (4, 5)])
def test_swapped_events_are_a_reorder(trail: IntegrityStore, first: int, second: int) -> None:
    with tampering(trail) as conn:
        conn.execute(text(f"UPDATE {EVENT} SET seq = {SHIFT} WHERE seq = :a"), {"a": first})
        conn.execute(text(f"UPDATE {EVENT} SET seq = :a WHERE seq = :b"), {"a": first, "b": second})
        conn.execute(text(f"UPDATE {EVENT} SET seq = :b WHERE seq = {SHIFT}"), {"b": second})
    assert_caught(trail, first, REORDER)


def test_truncated_tail_before_a_signed_checkpoint(trail: IntegrityStore) -> None:
    assert create_checkpoint(trail, KEY).seq == 12
    with tampering(trail) as conn:
        conn.execute(text(f"DELETE FROM {EVENT} WHERE seq >= 10"))
    assert_caught(trail, 10, TRUNCATED, key=KEY)
    assert_caught(trail, 10, TRUNCATED)


@pytest.mark.requirement("part11.11.70")
def test_consistent_rewrite_is_caught_by_the_checkpoint_after_the_last_good_one(store: IntegrityStore) -> None:
    # Checkpoints at seq 2 and 8; the attacker rewrites event 3 and re-hashes everything after it.
    record(store, 2)
    create_checkpoint(store, KEY)
    record(store, 6, start=100)
    create_checkpoint(store, KEY)
    record(store, 4, start=200)
    assert verify(store, key=KEY).ok
    with tampering(store) as conn:
        conn.execute(
            text(f"UPDATE {EVENT} SET body = :b WHERE seq = 3"), {"b": body_with(conn, 3, actor="mallory")}
        )
        rehash_from(conn, 3)
    assert_caught(store, 3, CHECKPOINT_MISMATCH, key=KEY)
    assert_caught(store, 3, CHECKPOINT_MISMATCH)  # the head hash at seq 8 is not the one recorded either
    # Updating the checkpoint's head hash too needs the key to re-sign it.
    with tampering(store) as conn:
        conn.execute(text(f"UPDATE {CHECKPOINT} SET head_hash = :h WHERE seq = 8"), {"h": hash_of(conn, 8)})
    assert_caught(store, 3, CHECKPOINT_MISMATCH, key=KEY)
    unkeyed = verify(store)
    assert unkeyed.ok and "not checked" in " ".join(unkeyed.warnings)


def test_rewrite_of_the_whole_chain_without_an_earlier_checkpoint_starts_at_one(trail: IntegrityStore) -> None:
    create_checkpoint(trail, KEY)
    with tampering(trail) as conn:
        conn.execute(text(f"UPDATE {EVENT} SET body = :b WHERE seq = 1"), {"b": body_with(conn, 1, actor="x")})
        rehash_from(conn, 1)
    assert_caught(trail, 1, CHECKPOINT_MISMATCH, key=KEY)


def test_searchable_copy_altered_after_its_generation_was_removed_is_a_field_mismatch(
    trail: IntegrityStore,
) -> None:
    if trail.backend == "sqlite":
        pytest.skip("SQLite filters on the hashed body itself: there is no derived copy to alter")
    with tampering(trail) as conn:
        conn.execute(text(f"ALTER TABLE {EVENT} ALTER COLUMN doc DROP EXPRESSION"))
        # Hide event 7 from "everything about claim-2" without touching its hashed record.
        conn.execute(
            text(f"UPDATE {EVENT} SET doc = jsonb_set(doc, '{{business_key}}', '\"claim-99\"') WHERE seq = 7")
        )
    assert_caught(trail, 7, FIELD_MISMATCH)


def test_disabled_triggers_are_reported_even_when_the_chain_is_intact(trail: IntegrityStore) -> None:
    with trail.begin() as conn:
        if trail.backend == "postgresql":
            conn.execute(text(f"ALTER TABLE {EVENT} DISABLE TRIGGER USER"))
        else:
            conn.execute(text(f"DROP TRIGGER {EVENT}_no_delete"))
    result = verify(trail)
    assert result.ok
    assert any(EVENT in w and "trigger" in w for w in result.warnings)


# Long chains: verify reads them in large stretches (PostgreSQL: one row per 1,000 events; SQLite: the table in
# insertion order) and hands the first stretch it does not accept to the row-by-row pass that names the anomaly.
LONG = 2_500


@pytest.fixture
def long_trail(store: IntegrityStore) -> IntegrityStore:
    record(store, LONG)
    return store


def test_an_edit_deep_in_a_long_chain_is_caught_at_its_event(long_trail: IntegrityStore) -> None:
    assert verify(long_trail).count == LONG
    with tampering(long_trail) as conn:
        conn.execute(
            text(f"UPDATE {EVENT} SET body = :b WHERE seq = 1700"), {"b": body_with(conn, 1700, actor="mallory")}
        )
    assert_caught(long_trail, 1700, HASH_MISMATCH)


def test_more_than_a_stretch_of_deleted_events_is_a_gap_at_the_first(long_trail: IntegrityStore) -> None:
    with tampering(long_trail) as conn:
        conn.execute(text(f"DELETE FROM {EVENT} WHERE seq BETWEEN 1001 AND 2100"))
    assert_caught(long_trail, 1001, GAP)


def test_events_swapped_deep_in_a_long_chain_are_a_reorder(long_trail: IntegrityStore) -> None:
    with tampering(long_trail) as conn:
        conn.execute(text(f"UPDATE {EVENT} SET seq = {SHIFT} WHERE seq = 1999"))
        conn.execute(text(f"UPDATE {EVENT} SET seq = 1999 WHERE seq = 2000"))
        conn.execute(text(f"UPDATE {EVENT} SET seq = 2000 WHERE seq = {SHIFT}"))
    assert_caught(long_trail, 1999, REORDER)


def test_a_second_event_with_an_existing_number_stored_last_is_a_forged_insert(long_trail: IntegrityStore) -> None:
    # Stored after every other row, the copy does not follow its number in the table's own order.
    with tampering(long_trail) as conn:
        if long_trail.backend == "postgresql":
            conn.execute(text(f"ALTER TABLE {EVENT} DROP CONSTRAINT {EVENT}_pkey"))
        else:
            conn.execute(text(f"CREATE TABLE unkeyed AS SELECT * FROM {EVENT}"))
            conn.execute(text(f"DROP TABLE {EVENT}"))
            conn.execute(text(f"ALTER TABLE unkeyed RENAME TO {EVENT}"))
        conn.execute(
            text(
                f"INSERT INTO {EVENT} (seq, body, prev_hash, hash) "
                f"SELECT seq, body, prev_hash, hash FROM {EVENT} WHERE seq = 1200"
            )
        )
    assert_caught(long_trail, 1200, FORGED_INSERT)


def test_a_checkpoint_deep_in_a_long_chain_catches_a_consistent_rewrite_before_it(store: IntegrityStore) -> None:
    record(store, 1_500)
    create_checkpoint(store, KEY)
    record(store, 1_000, start=5_000)
    result = verify(store, key=KEY)
    assert (result.ok, result.count, result.checkpoints) == (True, LONG, 1), result.summary()
    since = verify(store, key=KEY, from_checkpoint=True)
    assert (since.ok, since.verified_from, since.count) == (True, 1_501, 1_000), since.summary()
    with tampering(store) as conn:
        conn.execute(
            text(f"UPDATE {EVENT} SET body = :b WHERE seq = 1300"), {"b": body_with(conn, 1300, actor="mallory")}
        )
        rehash_from(conn, 1300)
    assert_caught(store, 1, CHECKPOINT_MISMATCH, key=KEY)


def test_a_recorded_event_altered_before_it_was_chained_is_named(store: IntegrityStore) -> None:
    if store.backend == "sqlite":
        pytest.skip("SQLite chains every event as it is recorded: there is no intake row to alter")
    record(store, 3)
    pending = str(uuid.uuid4())
    with store.begin() as conn:  # recorded by a writer that has not chained it yet
        conn.execute(
            text(f"INSERT INTO {INTAKE} (event_id, event_type, actor, details) VALUES (:e, 'paid', 'w', :d)"),
            {"e": pending, "d": canonical_json({"amount": 10})},
        )
    before = verify(store)
    assert before.ok and before.pending == 1, before
    with tampering(store) as conn:
        conn.execute(
            text(f"UPDATE {INTAKE} SET details = :d WHERE event_id = :e"),
            {"d": canonical_json({"amount": 10_000}), "e": pending},
        )
    result = verify(store)
    assert (result.ok, result.first_bad_seq, result.reason) == (False, 4, ALTERED_BEFORE_CHAINING), result
    assert pending in (result.detail or "") and result.count == 3


def _pending_row(store: IntegrityStore, details: object) -> str:
    """An event recorded and left unchained (as by a writer whose process ended before its batch)."""
    event_id = str(uuid.uuid4())
    with store.begin() as conn:
        conn.execute(
            text(f"INSERT INTO {INTAKE} (event_id, event_type, actor, details) VALUES (:e, 'paid', 'w', :d)"),
            {"e": event_id, "d": canonical_json(details)},
        )
    return event_id


def test_an_intake_row_edited_while_it_waits_is_neither_chained_nor_signed_nor_exported_as_verified(
    store: IntegrityStore,
) -> None:
    import io

    from airflow_integrity.store.audit.event import AuditChainError
    from airflow_integrity.store.audit.export import export

    if store.backend == "sqlite":
        pytest.skip("SQLite chains every event as it is recorded: there is no intake row to alter")
    record(store, 3)
    pending = _pending_row(store, {"amount": 10})
    with tampering(store) as conn:
        conn.execute(
            text(f"UPDATE {INTAKE} SET details = :d WHERE event_id = :e"),
            {"d": canonical_json({"amount": 10_000}), "e": pending},
        )
    # Chaining leaves the altered row out; events recorded after it are chained as usual.
    AuditLog(store).append(AuditEvent(event_type="later", actor="w"))
    with store.read() as conn:
        chained = conn.execute(text(f"SELECT body FROM {EVENT} ORDER BY seq")).scalars().all()
    assert len(chained) == 4 and pending not in "".join(chained) and '"event_type":"later"' in chained[-1]
    with pytest.raises(AuditChainError, match=rf"Not signing a checkpoint.*{pending}"):
        create_checkpoint(store, KEY)
    out = io.StringIO()
    summary = export(store, "jsonl", out=out)
    header = json.loads(out.getvalue().splitlines()[0])
    assert not summary.verification.ok and header["verified"] is False
    assert summary.verification.reason == ALTERED_BEFORE_CHAINING and pending in summary.verification.detail


def test_a_malformed_intake_row_is_refused_and_one_written_with_the_checks_off_stops_nothing(
    store: IntegrityStore,
) -> None:
    from sqlalchemy.exc import DBAPIError

    from airflow_integrity.store.audit.chain import AuditLog as Log

    if store.backend == "sqlite":
        pytest.skip("SQLite has no intake table: an event's body is written by the chaining code itself")
    record(store, 2)
    insert = f"INSERT INTO {INTAKE} (event_id, event_type, actor, details) VALUES (:e, 'paid', 'w', :d)"
    for details in ('{"amount": 10', '"just text"', "[1, 2]"):
        refused = r"invalid input syntax for type json|must be a JSON object"
        with pytest.raises(DBAPIError, match=refused), store.begin() as conn:
            conn.execute(text(insert), {"e": str(uuid.uuid4()), "d": details})
    # Someone who can switch the triggers off writes one anyway: chaining goes on past it, verify names it.
    bad = str(uuid.uuid4())
    with tampering(store) as conn:
        conn.execute(text(insert), {"e": bad, "d": '{"amount": 10'})
    receipt = Log(store).record(AuditEvent(event_type="after", actor="w"))
    Log(store).chain_pending()
    with store.read() as conn:
        bodies = conn.execute(text(f"SELECT body FROM {EVENT} ORDER BY seq")).scalars().all()
    assert len(bodies) == 3 and receipt.event_id in bodies[-1]
    result = verify(store)
    assert (result.ok, result.reason) == (False, ALTERED_BEFORE_CHAINING)
    assert bad in (result.detail or "") and "not a JSON object" in (result.detail or "")


@pytest.mark.requirement("part11.11.10h")
def test_an_intake_row_cannot_choose_its_time_or_hide_below_the_chaining_horizon(store: IntegrityStore) -> None:
    from datetime import datetime, timedelta

    if store.backend == "sqlite":
        pytest.skip("SQLite has no intake table")
    record(store, 2)
    event_id = str(uuid.uuid4())
    with store.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO {INTAKE} (event_id, event_type, actor, details, recorded_at, txid) "
                "VALUES (:e, 'backdated', 'w', '{}', '2001-01-01T00:00:00Z', 1)"
            ),
            {"e": event_id},
        )
    assert verify(store).pending == 1  # seen as waiting, not hidden below the horizon
    AuditLog(store).chain_pending()
    (found,) = [r for _, r in iter_records(store) if not isinstance(r, str) and r.event_id == event_id]
    assert abs(found.recorded_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_a_forged_checkpoint_dated_in_the_future_does_not_stop_periodic_signing(
    store: IntegrityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_integrity.hooks.audit_checkpoints import checkpoint_if_due

    record(store, 3)
    monkeypatch.setenv("AIRFLOW_CONN_TAMPER_KEY", json.dumps({"conn_type": "generic", "password": KEY_SECRET}))
    monkeypatch.setenv("AIRFLOW__INTEGRITY__CHECKPOINT_KEY_CONN_ID", "tamper_key")
    with store.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO {CHECKPOINT} (seq, head_hash, created_at, key_id, algorithm, signature) "
                "VALUES (3, :h, '2099-01-01T00:00:00.000000Z', :k, 'hmac-sha256', :s)"
            ),
            {"h": "0" * 64, "k": KEY.key_id, "s": "0" * 64},
        )
    made = checkpoint_if_due(store)
    assert made is not None and made.seq == 3


@pytest.mark.parametrize("names_a_recorded_row", [False, True])
def test_an_event_inserted_into_the_chain_directly_is_named_and_hides_no_recorded_event(
    store: IntegrityStore, names_a_recorded_row: bool
) -> None:
    from airflow_integrity.store.audit.verify import LOST_BEFORE_CHAINING

    if store.backend == "sqlite":
        pytest.skip("SQLite has no intake table: every event is chained as it is recorded")
    record(store, 3)
    hidden = _pending_row(store, {"amount": 10})  # recorded, waiting for its batch
    with store.begin() as conn:  # the chain extended by hand, with a fresh horizon that lies past `hidden`
        prev = hash_of(conn, 3)
        intake_id, body = None, canonical_json({"event_type": "approval.granted", "event_id": str(uuid.uuid4())})
        if names_a_recorded_row:  # a row recorded as usual, chained by hand so that the event looks chained
            forged = _pending_row(store, {"decision": "granted"})
            intake_id, body = conn.execute(
                text(f"SELECT i.id, integrity_audit_body(i) FROM {INTAKE} AS i WHERE i.event_id = :e"),
                {"e": forged},
            ).one()
        conn.execute(
            text(
                f"INSERT INTO {EVENT} (seq, body, prev_hash, hash, intake_id, chain_xmax, chain_xip, chain_txid) "
                "VALUES (4, :b, :p, :h, :i, pg_snapshot_xmax(pg_current_snapshot())::text::bigint, '{}', "
                "pg_current_xact_id()::text::bigint)"
            ),
            {"b": body, "p": prev, "h": chain_hash(prev, 4, body.encode()), "i": intake_id},
        )
    assert AuditLog(store).chain_pending() == 0  # the chaining can no longer see `hidden`
    result = verify(store)
    assert not result.ok, result
    if names_a_recorded_row:
        assert (result.first_bad_seq, result.reason) == (5, LOST_BEFORE_CHAINING), result
        assert hidden in (result.detail or "")
    else:
        assert (result.first_bad_seq, result.reason) == (4, FORGED_INSERT), result
        assert "inserted into the chain directly" in (result.detail or "")


def test_an_event_recorded_inside_a_savepoint_is_chained_like_any_other(store: IntegrityStore) -> None:
    if store.backend == "sqlite":
        pytest.skip("SQLite has no intake table")
    record(store, 2)
    event_id = str(uuid.uuid4())
    with store.begin() as conn, conn.begin_nested():
        conn.execute(
            text(f"INSERT INTO {INTAKE} (event_id, event_type, actor, details) VALUES (:e, 'paid', 'w', '{{}}')"),
            {"e": event_id},
        )
    assert AuditLog(store).chain_pending() == 1
    result = verify(store)
    assert result.ok and result.count == 3 and result.pending == 0, result
    create_checkpoint(store, KEY)  # signing goes on


def test_a_checkpoint_row_with_a_signature_that_is_not_hex_is_a_mismatch_not_a_crash(
    store: IntegrityStore,
) -> None:
    record(store, 2)
    create_checkpoint(store, KEY)
    record(store, 1, start=3)
    with store.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO {CHECKPOINT} (seq, head_hash, created_at, key_id, algorithm, signature) "
                "VALUES (3, :h, '2026-12-04T00:00:00.000000Z', :k, 'hmac-sha256', 'é')"
            ),
            {"h": "0" * 64, "k": KEY.key_id},
        )
    result = verify(store, key=KEY)
    assert (result.ok, result.reason) == (False, CHECKPOINT_MISMATCH), result
    assert create_checkpoint(store, KEY).seq == 3  # a forged row does not stop signing
