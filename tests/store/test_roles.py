"""The two-role PostgreSQL set-up on a real server: an owner role migrates and grants, a runtime role runs every
product path and is refused, by privilege, every change of the audit trail and the ledger history, every DDL
and every way of switching triggers off."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from airflow_integrity.store import (
    IntegrityStore,
    SchemaNotCurrentError,
    StoreLocation,
    validation_results,
)
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.checkpoints import create_checkpoint
from airflow_integrity.store.audit.event import AuditEvent
from airflow_integrity.store.audit.export import export
from airflow_integrity.store.audit.schema import CONTENT_COLUMNS
from airflow_integrity.store.audit.signing import CheckpointKey
from airflow_integrity.store.audit.verify import verify
from airflow_integrity.store.connections import close_connections
from airflow_integrity.store.ledger import sql as ledger_sql
from airflow_integrity.store.ledger.codec import inputs_digest
from airflow_integrity.store.ledger.entries import ClaimStatus, StaleHolderError
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from airflow_integrity.store.migrate import upgrade
from airflow_integrity.store.roles import (
    RuntimeRoleError,
    check_runtime_role,
    grant_runtime_role,
    refused_migration,
    store_grantees,
)
from tests.pg_roles import TwoRoles, two_roles

pytestmark = pytest.mark.integration

AUDIT_TABLES = ("integrity_audit_event", "integrity_audit_intake", "integrity_audit_checkpoint")
APPEND_ONLY = (*AUDIT_TABLES, "integrity_ledger_history")
HOLDER = {"dag_id": "claims", "run_id": "manual__1", "task_id": "pay", "try_number": 1}
OTHER = {"dag_id": "claims", "run_id": "manual__2", "task_id": "pay", "try_number": 1}


@dataclass(frozen=True)
class Stores:
    """One store database reached as its owner and as its runtime role."""

    roles: TwoRoles
    owner: IntegrityStore
    runtime: IntegrityStore


@contextmanager
def _two_role_store(server, *, revisions: tuple[str, ...] = ("heads",)) -> Iterator[Stores]:  # type: ignore[no-untyped-def]
    with two_roles(server) as roles:
        owner = IntegrityStore(StoreLocation.from_url(roles.owner_url, source="owner connection"))
        runtime = IntegrityStore(StoreLocation.from_url(roles.runtime_url, source="runtime connection"))
        try:
            for revision in revisions:
                upgrade(owner.engine, revision)
            yield Stores(roles, owner, runtime)
        finally:
            close_connections()
            owner.engine.dispose()
            runtime.engine.dispose()


@pytest.fixture(scope="module")
def granted(pg_server) -> Iterator[Stores]:  # type: ignore[no-untyped-def]
    """A current store whose runtime role was granted by the owner (shared: its tests only add rows)."""
    with _two_role_store(pg_server) as stores:
        grant_runtime_role(stores.owner, stores.roles.runtime)
        yield stores


@pytest.fixture
def fresh(pg_server) -> Iterator[Stores]:  # type: ignore[no-untyped-def]
    """A current store whose runtime role holds nothing yet (for tests that change privileges)."""
    with _two_role_store(pg_server) as stores:
        yield stores


def _refusal(url: str, sql: str):  # type: ignore[no-untyped-def]
    import psycopg

    with psycopg.connect(url) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute(sql)
    return caught.value


def _held(store: IntegrityStore, role: str, table: str) -> set[str]:
    privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
    with store.read() as conn:
        if int(conn.execute(text("SHOW server_version_num")).scalar_one()) >= 170000:
            privileges.append("MAINTAIN")
        rows = conn.execute(
            text(
                "SELECT p, has_table_privilege(CAST(:role AS name), CAST(:t AS regclass), p) "
                "FROM unnest(CAST(:privs AS text[])) AS p"
            ),
            {"role": role, "t": table, "privs": privileges},
        ).all()
    return {p for p, allowed in rows if allowed}


def _insert_columns(sql: str) -> set[str]:
    """The columns an INSERT statement of the product names."""
    match = re.search(r"INSERT INTO \w+(?: AS \w+)? \(([^)]*)\)", sql)
    assert match is not None, sql
    return {column.strip() for column in match.group(1).split(",")}


# What each table the runtime role inserts into takes from it: the columns the product's own INSERT statements
# name (every column but the identity/serial id, and on the intake the three the database sets).
PRODUCT_INSERTS = {
    "integrity_audit_intake": set(CONTENT_COLUMNS),  # AuditLog.record and integrity_audit_append
    "integrity_audit_checkpoint": {"seq", "head_hash", "created_at", "key_id", "algorithm", "signature"},
    "integrity_ledger": _insert_columns(ledger_sql._CLAIM),
    "integrity_ledger_blob": _insert_columns(ledger_sql._INSERT_BLOB),
    "integrity_validation_result": {c.strip() for c in validation_results._COLUMNS.split(",")},
}


def _insertable(store: IntegrityStore, role: str, table: str) -> tuple[bool, set[str], set[str]]:
    """Whether ``role`` may INSERT into ``table`` as a whole, the columns it may INSERT, and all columns."""
    with store.read() as conn:
        whole = conn.execute(
            text("SELECT has_table_privilege(CAST(:role AS name), CAST(:t AS regclass), 'INSERT')"),
            {"role": role, "t": table},
        ).scalar_one()
        columns = conn.execute(
            text(
                "SELECT attname, has_column_privilege(CAST(:role AS name), attrelid, attnum, 'INSERT') "
                "FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped"
            ),
            {"role": role, "t": table},
        ).all()
    return whole, {name for name, allowed in columns if allowed}, {name for name, _ in columns}


def test_runtime_role_reads_the_store_inserts_only_the_columns_the_product_names_and_updates_only_the_ledger(
    granted: Stores,
) -> None:
    role = granted.roles.runtime
    for table in (*APPEND_ONLY, "integrity_ledger_blob", "integrity_validation_result"):
        assert _held(granted.owner, role, table) == {"SELECT"}, table
    assert _held(granted.owner, role, "integrity_ledger") == {"SELECT", "UPDATE"}
    for table, named in PRODUCT_INSERTS.items():
        whole, columns, every = _insertable(granted.owner, role, table)
        # Granted per column, never on the table as a whole: every column the product's INSERT names, and
        # never the id (identity or serial) nor a column the database sets.
        assert whole is False, table
        assert named <= columns, (table, named - columns)
        assert "id" not in columns, table
        expected = (
            every - {"id"} - ({"txid", "recorded_at", "seal"} if table == "integrity_audit_intake" else set())
        )
        assert columns == expected, table
    assert (
        PRODUCT_INSERTS["integrity_audit_intake"] == _insertable(granted.owner, role, "integrity_audit_intake")[1]
    )
    # The chain and the ledger history are written only by the store's own SECURITY DEFINER functions.
    for table in ("integrity_audit_event", "integrity_ledger_history", "integrity_store_info"):
        assert _insertable(granted.owner, role, table)[:2] == (False, set()), table
    for table in ("integrity_store_info", "integrity_alembic_version"):
        assert _held(granted.owner, role, table) == {"SELECT"}, table
    with granted.owner.read() as conn:
        owned = conn.execute(
            text("SELECT count(*) FROM pg_class WHERE relowner = CAST(:role AS regrole)"), {"role": role}
        ).scalar_one()
        trigger_function_execute = conn.execute(
            text(
                "SELECT bool_or(has_function_privilege(CAST(:role AS name), p.oid, 'EXECUTE')) FROM pg_proc AS p "
                "WHERE p.proname LIKE 'integrity%' AND p.prorettype = 'trigger'::regtype"
            ),
            {"role": role},
        ).scalar_one()
        executable = set(
            conn.execute(
                text(
                    "SELECT p.proname FROM pg_proc AS p WHERE p.proname LIKE 'integrity%' "
                    "AND has_function_privilege(CAST(:role AS name), p.oid, 'EXECUTE')"
                ),
                {"role": role},
            ).scalars()
        )
        sequences = dict(
            conn.execute(
                text(
                    "SELECT c.relname, ARRAY(SELECT p FROM unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) AS p "
                    "WHERE has_sequence_privilege(CAST(:role AS name), c.oid, p)) FROM pg_class AS c "
                    "WHERE c.relkind = 'S' AND c.relname LIKE 'integrity%'"
                ),
                {"role": role},
            ).all()
        )
    assert owned == 0 and trigger_function_execute is False
    # What it calls itself, and what the intake's invoker-rights stamp trigger calls with its rights.
    assert {
        "integrity_audit_append",
        "integrity_audit_chain",
        "integrity_audit_chained",
        "integrity_audit_positions",
        "integrity_ledger_note",
        "integrity_audit_seal",
        "integrity_audit_body",
        "integrity_audit_json_ok",
    } <= executable, executable
    # setval() of the flush sequence; nextval() for the serial ids of the tables it inserts into; nothing on the
    # others', nor on the identity sequences of the intake and checkpoint ids (an identity column needs no right
    # on its sequence, so no role that may insert can run a 32-bit one to its end).
    assert sequences["integrity_audit_flush_seq"] == ["UPDATE"]
    for name in ("integrity_ledger_id_seq", "integrity_ledger_blob_id_seq"):
        assert sequences[name] == ["USAGE"], name
    for name in (
        "integrity_audit_checkpoint_id_seq",
        "integrity_audit_intake_id_seq",
        "integrity_ledger_history_id_seq",
        "integrity_store_info_id_seq",
    ):
        assert sequences[name] == [], name
    assert check_runtime_role(granted.owner, role) == []
    assert store_grantees(granted.owner) == [role]


_UUID = "gen_random_uuid()::text"
_ZEROS = "repeat('0', 64)"
# Rows the product never inserts itself: events of the chain, history rows, and rows that choose an id (just
# ahead of the sequence, every later insert of the product would clash with them) or a column the database sets.
REFUSED_INSERTS = {
    "forged_chain_event": (
        "integrity_audit_event",
        "INSERT INTO integrity_audit_event (seq, body, prev_hash, hash) "
        f"VALUES (1000000, '{{}}', {_ZEROS}, {_ZEROS})",
    ),
    "forged_ledger_history": (
        "integrity_ledger_history",
        "INSERT INTO integrity_ledger_history (ledger_id, namespace, idempotency_key, event, at) "
        "VALUES (1, 'payments', 'claim-9', 'released', now())",
    ),
    "ledger_history_id_ahead": (
        "integrity_ledger_history",
        "INSERT INTO integrity_ledger_history (id, ledger_id, namespace, idempotency_key, event, at) "
        "VALUES (1000000, 1, 'payments', 'claim-9', 'released', now())",
    ),
    **{
        f"intake_{column}": (
            "integrity_audit_intake",
            f"INSERT INTO integrity_audit_intake (event_id, event_type, actor, details, {column}) "
            f"VALUES ({_UUID}, 'claim.forged', 'x', '{{}}', {value})",
        )
        for column, value in (
            ("id", "1000000"),
            ("txid", "1"),
            ("recorded_at", "TIMESTAMPTZ '2020-01-01 00:00:00Z'"),
            ("seal", _ZEROS),
        )
    },
    "ledger_id_ahead": (
        "integrity_ledger",
        "INSERT INTO integrity_ledger (id, namespace, idempotency_key, fingerprint, state, holder, origin, "
        "fencing_token, lease_seconds, lease_expires_at, attempts, created_at, updated_at, last_event) VALUES "
        f"(1000000, 'payments', {_UUID}, {_ZEROS}, 'in_progress', '{{}}', '{{}}', 1, 30, "
        "now() + interval '30 seconds', 1, now(), now(), 'claimed')",
    ),
    "ledger_blob_id_ahead": (
        "integrity_ledger_blob",
        "INSERT INTO integrity_ledger_blob (id, namespace, idempotency_key, fencing_token, sha256, size, body, "
        f"created_at) VALUES (1000000, 'payments', 'claim-9', 1, {_ZEROS}, 0, '', now())",
    ),
    "checkpoint_id_ahead": (
        "integrity_audit_checkpoint",
        "INSERT INTO integrity_audit_checkpoint (id, seq, head_hash, created_at, key_id, algorithm, signature) "
        f"VALUES (1000000, 1, {_ZEROS}, '2026-01-01T00:00:00.000000Z', 'k', 'hmac-sha256', 'x')",
    ),
}


@pytest.mark.parametrize(("table", "statement"), list(REFUSED_INSERTS.values()), ids=list(REFUSED_INSERTS))
def test_runtime_role_is_refused_inserting_into_the_chain_or_history_or_choosing_an_id_by_privilege(
    granted: Stores, table: str, statement: str
) -> None:
    error = _refusal(granted.roles.runtime_url, statement)
    assert error.sqlstate == "42501", str(error)
    assert str(error).startswith(f"permission denied for table {table}"), str(error)


@pytest.mark.requirement("part11.11.10c")
@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize("statement", ["UPDATE {t} SET {c} = {c}", "DELETE FROM {t}", "TRUNCATE {t}"])
def test_runtime_role_is_refused_changing_the_audit_trail_and_ledger_history_by_privilege(
    granted: Stores, table: str, statement: str
) -> None:
    column = "id" if table != "integrity_audit_event" else "seq"
    error = _refusal(granted.roles.runtime_url, statement.format(t=table, c=column))
    # insufficient_privilege from the privilege check, before any trigger of the table could run.
    assert error.sqlstate == "42501"
    assert str(error).startswith(f"permission denied for table {table}"), str(error)


REFUSED_DDL = {
    "disable_append_only_trigger": "ALTER TABLE integrity_audit_event "
    "DISABLE TRIGGER integrity_audit_event_append_only",
    "disable_all_intake_triggers": "ALTER TABLE integrity_audit_intake DISABLE TRIGGER ALL",
    "disable_history_triggers": "ALTER TABLE integrity_ledger_history DISABLE TRIGGER USER",
    "disable_ledger_triggers": "ALTER TABLE integrity_ledger DISABLE TRIGGER ALL",
    "drop_append_only_trigger": "DROP TRIGGER integrity_audit_event_append_only ON integrity_audit_event",
    "drop_history_trigger": "DROP TRIGGER integrity_ledger_history_append_only ON integrity_ledger_history",
    "drop_ledger_history_writer": "DROP TRIGGER integrity_ledger_history_on_insert ON integrity_ledger",
    "create_trigger": "CREATE TRIGGER sneak BEFORE INSERT ON integrity_audit_intake FOR EACH ROW "
    "EXECUTE FUNCTION integrity_audit_refuse_change()",
    "replica_mode_skips_triggers": "SET session_replication_role = replica",
    "become_the_owner": "SET ROLE {owner}",
    "add_column": "ALTER TABLE integrity_audit_event ADD COLUMN note text",
    "take_ownership": "ALTER TABLE integrity_audit_checkpoint OWNER TO CURRENT_USER",
    "drop_table": "DROP TABLE integrity_audit_checkpoint",
    "create_index": "CREATE INDEX sneak ON integrity_audit_event (hash)",
    "comment": "COMMENT ON TABLE integrity_audit_event IS 'edited'",
    "create_table": "CREATE TABLE integrity_sneak (id int)",
    "create_temp_table": "CREATE TEMP TABLE integrity_audit_event (seq bigint)",
    "create_schema": "CREATE SCHEMA sneak",
    "create_function": "CREATE FUNCTION sneak() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "replace_chain_function": "CREATE OR REPLACE FUNCTION integrity_audit_chained(p_ids bigint[]) RETURNS bigint "
    "LANGUAGE sql AS 'SELECT 0::bigint'",
    "drop_chain_function": "DROP FUNCTION integrity_audit_chain(boolean)",
    "reset_identity": "SELECT setval('integrity_audit_intake_id_seq', 1)",
    "lock_the_log": "LOCK TABLE integrity_audit_event IN ACCESS EXCLUSIVE MODE",
    "delete_ledger_row": "DELETE FROM integrity_ledger",
    "truncate_ledger": "TRUNCATE integrity_ledger",
    "update_validation_result": "UPDATE integrity_validation_result SET status = 'passed'",
    "delete_large_result": "DELETE FROM integrity_ledger_blob",
    "update_store_identity": "UPDATE integrity_store_info SET store_id = store_id",
    "rewrite_schema_revision": "DELETE FROM integrity_alembic_version",
}


@pytest.mark.requirement("annex11.12")
@pytest.mark.parametrize("statement", list(REFUSED_DDL.values()), ids=list(REFUSED_DDL))
def test_runtime_role_cannot_switch_triggers_off_change_the_schema_or_remove_anything(
    granted: Stores, statement: str
) -> None:
    error = _refusal(granted.roles.runtime_url, statement.format(owner=f'"{granted.roles.owner}"'))
    assert error.sqlstate == "42501", str(error)
    assert "permission denied" in str(error) or "must be owner" in str(error), str(error)


def test_audit_trail_records_chains_verifies_exports_and_signs_as_the_runtime_role(granted: Stores) -> None:
    store = granted.runtime
    with store.read() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == granted.roles.runtime
    log = AuditLog(store)
    first = log.append(AuditEvent("claim.received", "runtime-test", business_key="claim-7", details={"n": 1}))
    assert first.seq is not None and first.seq >= 1
    recorded = log.record(AuditEvent("claim.assessed", "runtime-test", business_key="claim-7"), chain_within=None)
    assert recorded.event_id and recorded.recorded_at is not None  # durable; chained now or in a batch
    many = log.record_many(
        [AuditEvent("claim.note", "runtime-test", business_key="claim-7", details={"i": i}) for i in range(3)],
        chain_within=None,
    )
    assert len(many) == 3
    log.chain_pending()
    assert log.head().seq == first.seq + 4

    result = verify(store)
    assert result.ok and result.pending == 0 and result.warnings == (), result.summary()
    key = CheckpointKey.hmac_sha256("a signing secret of some length")
    checkpoint = create_checkpoint(store, key)
    assert checkpoint.seq == first.seq + 4
    signed = verify(store, key=key)
    assert signed.ok and signed.checkpoints >= 1 and signed.signatures_checked, signed.summary()

    out = io.StringIO()
    summary = export(store, "jsonl", out=out, business_key="claim-7", key=key)
    assert summary.verification.ok and summary.events == 5
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    events = [line for line in lines if line["record"] == "event"]
    assert len(events) == 5 and all(line["verified"] for line in events)
    assert {line["event_type"] for line in events} == {"claim.received", "claim.assessed", "claim.note"}


def test_hook_records_events_as_the_runtime_role_with_auto_migrate_on_a_current_schema(
    granted: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_integrity.hooks.integrity import IntegrityCheckHook

    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", granted.roles.runtime_url)
    monkeypatch.setenv("AIRFLOW__INTEGRITY__AUTO_MIGRATE", "True")
    hook = IntegrityCheckHook()
    assert hook.get_store().location.url.username == granted.roles.runtime
    chained = hook.record_event(AuditEvent("approval.signed", "reviewer", business_key="claim-8"), chain=True)
    pending = hook.record_event(AuditEvent("claim.paid", "worker", business_key="claim-8"))
    assert chained is not None and chained.seq is not None
    assert pending is not None and pending.event_id
    AuditLog(hook.get_store()).chain_pending()
    result = verify(granted.runtime)
    assert result.ok and result.pending == 0, result.summary()
    with granted.owner.read() as conn:
        types = conn.execute(
            text("SELECT doc ->> 'event_type' FROM integrity_audit_event WHERE doc ->> 'business_key' = 'claim-8'")
        ).scalars()
        assert sorted(types) == ["approval.signed", "claim.paid"]


def test_ledger_claims_completes_fails_releases_and_reads_history_as_the_runtime_role(granted: Stores) -> None:
    inputs = inputs_digest({"claim_id": 9, "amount": "10.00"})
    with IdempotencyLedger(granted.runtime, namespace="payments") as ledger:
        first = ledger.claim("claim-9", fingerprint=inputs, holder=HOLDER, lease_seconds=30)
        assert first.status is ClaimStatus.CLAIMED and first.lease is not None
        busy = ledger.claim("claim-9", fingerprint=inputs, holder=OTHER)
        assert busy.status is ClaimStatus.BUSY
        lease = ledger.renew(first.lease)
        ledger.complete(lease, {"payment_id": "PAY-9"})
        replay = ledger.claim("claim-9", fingerprint=inputs, holder=OTHER)
        assert replay.status is ClaimStatus.REPLAY and replay.result == {"payment_id": "PAY-9"}

        large = ledger.claim("claim-10", fingerprint=inputs, holder=HOLDER)
        assert large.lease is not None
        document = {"pages": "x" * (100 * 1024)}
        assert ledger.complete(large.lease, document).stored_by_reference
        assert ledger.claim("claim-10", fingerprint=inputs, holder=OTHER).result == document

        failing = ledger.claim("claim-11", fingerprint=inputs, holder=HOLDER)
        assert failing.lease is not None
        ledger.fail(failing.lease, "card declined", retryable=True)
        retried = ledger.claim("claim-11", fingerprint=inputs, holder=OTHER)
        assert retried.status is ClaimStatus.CLAIMED and retried.lease is not None
        assert retried.lease.fencing_token == 2
        # The first holder's late completion is refused, and the refusal noted in the key's history.
        with pytest.raises(StaleHolderError):
            ledger.complete(failing.lease, {"payment_id": "PAY-11"})

        # Other inputs under a settled key: refused, and noted too.
        mismatch = ledger.claim(
            "claim-9", fingerprint=inputs_digest({"claim_id": 9, "amount": "99.00"}), holder=OTHER
        )
        assert mismatch.status is ClaimStatus.MISMATCH
        released = ledger.release("claim-9", reason="refund issued, pay again", person="qa.reviewer")
        assert released is not None
        events = [entry.event for entry in ledger.history("claim-9")]
        stale = [entry.event for entry in ledger.history("claim-11")]
    # The replay and the refusals are notes the store's owner function writes for the runtime role.
    assert events == ["claimed", "completed", "replayed", "fingerprint_mismatch", "released"], events
    assert stale == ["claimed", "failed", "claimed", "stale_holder_refused"], stale
    with granted.owner.read() as conn:
        by_key = dict(
            conn.execute(
                text(
                    "SELECT idempotency_key, array_agg(event ORDER BY id) FROM integrity_ledger_history "
                    "WHERE namespace = 'payments' AND idempotency_key IN ('claim-9', 'claim-11') GROUP BY 1"
                )
            ).all()
        )
    assert by_key == {"claim-9": events, "claim-11": stale}


def test_validation_result_is_stored_and_read_as_the_runtime_role(
    granted: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.store import validation_results

    summary = {"success": True, "suite": {"name": "claims", "fingerprint": "sha256:ab"}, "data": {}}
    result_id = validation_results.save(
        granted.runtime, summary=summary, full_result={"results": []}, status="passed", identity=HOLDER
    )
    stored = validation_results.get(granted.runtime, result_id)
    assert stored is not None and stored.status == "passed" and stored.identity["dag_id"] == "claims"

    # The product's path: GX validates, the full result is stored and the validation audited.
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", granted.roles.runtime_url)
    hook = IntegrityCheckHook()
    suite = [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 0}}]
    run = hook.validate_data([{"age": 30}, {"age": 41}], suite, business_key="intake-3")
    assert run.status == "passed"
    full = hook.get_validation_result(run.result_id)
    assert full is not None and full.status == "passed"
    AuditLog(granted.runtime).chain_pending()
    with granted.owner.read() as conn:
        event = conn.execute(
            text(
                "SELECT doc ->> 'event_type' FROM integrity_audit_event WHERE doc ->> 'business_key' = 'intake-3'"
            )
        ).scalar_one()
    assert event == "validation.passed"


def test_granting_again_is_idempotent_covers_objects_of_later_migrations_and_revokes_anything_more(
    fresh: Stores,
) -> None:
    owner, role = fresh.owner, fresh.roles.runtime
    first = grant_runtime_role(owner, role)

    def acl() -> list[tuple[str, str | None]]:
        with owner.read() as conn:
            return conn.execute(
                text(
                    "SELECT relname, relacl::text FROM pg_class WHERE relname LIKE 'integrity%' "
                    "UNION ALL SELECT proname, proacl::text FROM pg_proc WHERE proname LIKE 'integrity%' "
                    "UNION ALL SELECT datname, datacl::text FROM pg_database WHERE datname = current_database() "
                    "UNION ALL SELECT nspname, nspacl::text FROM pg_namespace WHERE nspname = 'public' "
                    "UNION ALL SELECT attrelid::regclass::text || '.' || attname, attacl::text FROM pg_attribute "
                    "WHERE attrelid::regclass::text LIKE 'integrity%' AND attacl IS NOT NULL "
                    "ORDER BY 1, 2"
                )
            ).all()

    before = acl()
    assert grant_runtime_role(owner, role) == first
    assert acl() == before

    # A later migration adds a table with a serial id, a function and a trigger; someone (or an older set-up)
    # also gave the runtime role more than it needs.
    with owner.begin() as conn:
        for statement in (
            "CREATE TABLE integrity_later (id bigserial PRIMARY KEY, note text, at timestamptz DEFAULT now())",
            "CREATE FUNCTION integrity_later_count() RETURNS bigint LANGUAGE sql AS "
            "'SELECT count(*) FROM integrity_later'",
            "CREATE TRIGGER integrity_later_append_only BEFORE UPDATE OR DELETE ON integrity_later "
            "FOR EACH ROW EXECUTE FUNCTION integrity_audit_refuse_change()",
            f'GRANT UPDATE, DELETE, TRUNCATE, TRIGGER ON integrity_audit_event TO "{role}"',
            f'GRANT UPDATE (details) ON integrity_audit_intake TO "{role}"',
            # What an older set-up granted: INSERT on whole tables, the chain and the ledger history among them.
            f'GRANT INSERT ON integrity_audit_intake, integrity_ledger_history TO "{role}"',
            "GRANT UPDATE ON integrity_ledger_history TO PUBLIC",
            f'GRANT UPDATE ON SEQUENCE integrity_audit_intake_id_seq TO "{role}"',
            "GRANT EXECUTE ON FUNCTION integrity_audit_refuse_change() TO PUBLIC",
            "GRANT CREATE ON SCHEMA public TO PUBLIC",
        ):
            conn.execute(text(statement))
    problems = "\n".join(check_runtime_role(owner, role))
    for expected in (
        "lacks SELECT on table integrity_later",
        "lacks INSERT on columns note, at of table integrity_later",
        "lacks USAGE on sequence integrity_later_id_seq",
        "can DELETE on table integrity_audit_event through its own grant",
        "can UPDATE on table integrity_audit_intake through its own grant",
        "can INSERT on table integrity_audit_intake as a whole, id, txid, recorded_at, seal included, through its "
        "own grant",
        "can INSERT on table integrity_ledger_history through its own grant",
        "can UPDATE on table integrity_ledger_history through PUBLIC (REVOKE UPDATE ON TABLE "
        "integrity_ledger_history FROM PUBLIC)",
        "can EXECUTE on routine integrity_audit_refuse_change() through PUBLIC",
        "can CREATE objects in schema public",
    ):
        assert expected in problems, problems

    grants = grant_runtime_role(owner, role)
    assert check_runtime_role(owner, role) == []
    assert "integrity_later" in {obj.name for obj in grants.objects}
    assert any("integrity_later" in line for line in grants.summary())
    import psycopg

    with psycopg.connect(fresh.roles.runtime_url, autocommit=True) as conn:
        conn.execute("INSERT INTO integrity_later (note) VALUES ('recorded')")
        assert conn.execute("SELECT integrity_later_count()").fetchone() == (1,)
    for statement in (
        "UPDATE integrity_later SET note = 'x'",
        "UPDATE integrity_audit_intake SET details = '{}'",
        "INSERT INTO integrity_later (id, note) VALUES (1000, 'ahead of the sequence')",
        "INSERT INTO integrity_audit_intake (id, event_id, event_type, actor, details) "
        "VALUES (1000000, 'e-1', 'x', 'y', '{}')",
        "INSERT INTO integrity_ledger_history (ledger_id, namespace, idempotency_key, event, at) "
        "VALUES (1, 'n', 'k', 'released', now())",
    ):
        assert _refusal(fresh.roles.runtime_url, statement).sqlstate == "42501"


def test_check_names_an_insert_on_a_whole_table_or_into_a_column_the_product_never_names_with_its_fix(
    fresh: Stores,
) -> None:
    owner, roles = fresh.owner, fresh.roles
    role, quoted = roles.runtime, f'"{roles.runtime}"'
    grant_runtime_role(owner, role)
    with owner.begin() as conn:
        for statement in (
            f"GRANT INSERT ON integrity_audit_checkpoint TO {quoted}",
            f"GRANT INSERT (seal, txid) ON integrity_audit_intake TO {quoted}",
            "GRANT INSERT (id) ON integrity_ledger TO PUBLIC",
            f"GRANT INSERT (event) ON integrity_ledger_history TO {quoted}",
            f"GRANT INSERT ON integrity_audit_event TO {quoted}",
        ):
            conn.execute(text(statement))
    problems = check_runtime_role(owner, role)
    expected = {
        f"REVOKE INSERT ON TABLE integrity_audit_checkpoint FROM {quoted}": f"{role} can INSERT on table "
        "integrity_audit_checkpoint as a whole, id included, through its own grant",
        f"REVOKE INSERT (txid, seal) ON TABLE integrity_audit_intake FROM {quoted}": f"{role} can INSERT columns "
        "txid, seal of table integrity_audit_intake, which the product never names, through its own grant",
        "REVOKE INSERT (id) ON TABLE integrity_ledger FROM PUBLIC": f"{role} can INSERT column id of table "
        "integrity_ledger, which the product never names, through PUBLIC",
        f"REVOKE INSERT ON TABLE integrity_ledger_history FROM {quoted}": f"{role} can INSERT on table "
        "integrity_ledger_history through its own grant",
        f"REVOKE INSERT ON TABLE integrity_audit_event FROM {quoted}": f"{role} can INSERT on table "
        "integrity_audit_event through its own grant",
    }
    assert len(problems) == len(expected), problems
    for fix, what in expected.items():
        assert any(problem.startswith(what) and f"({fix}" in problem for problem in problems), (fix, problems)

    # The fixes as given: revoking INSERT on the table takes its column grants with it, which the check names
    # and granting again restores.
    with owner.begin() as conn:
        for fix in expected:
            conn.execute(text(fix))
    assert check_runtime_role(owner, role) == [
        f"{role} lacks INSERT on columns seq, head_hash, created_at, key_id, algorithm, signature of table "
        "integrity_audit_checkpoint, which the product needs (run `airflow integrity db migrate --runtime-role "
        f"{role}` as {roles.owner}, the object's owner)"
    ]
    grant_runtime_role(owner, role)
    assert check_runtime_role(owner, role) == []

    # A predefined role that writes every table.
    roles.admin(f"GRANT pg_write_all_data TO {quoted}")
    try:
        problems = check_runtime_role(owner, role)
    finally:
        roles.admin(f"REVOKE pg_write_all_data FROM {quoted}")
    assert (
        f"{role} can INSERT on table integrity_audit_intake as a whole, id, txid, recorded_at, seal included, "
        f"through a predefined role it belongs to, such as pg_write_all_data (revoke that role from {quoted})"
    ) in problems, problems


def test_grant_refuses_roles_it_cannot_make_safe_naming_the_role_and_the_fix(fresh: Stores) -> None:
    owner, roles = fresh.owner, fresh.roles
    with pytest.raises(RuntimeRoleError, match=r"'no_such_role_x' does not exist.*CREATE ROLE"):
        grant_runtime_role(owner, "no_such_role_x")
    with pytest.raises(RuntimeRoleError, match="is the role this command connects as"):
        grant_runtime_role(owner, roles.owner)

    # A runtime role that belongs to the owner can become it.
    roles.admin(f'GRANT "{roles.owner}" TO "{roles.runtime}"')
    with pytest.raises(RuntimeRoleError) as caught:
        grant_runtime_role(owner, roles.runtime)
    message = str(caught.value)
    assert (
        f"is a member of {roles.owner}" in message and f'REVOKE "{roles.owner}" FROM "{roles.runtime}"' in message
    )
    assert f"airflow integrity db migrate --runtime-role {roles.runtime}" in message
    roles.admin(f'REVOKE "{roles.owner}" FROM "{roles.runtime}"')
    assert check_runtime_role(owner, roles.runtime) == []  # the grants made before the refusal were kept

    # An older single-role set-up: the runtime role owns a table of the store.
    roles.admin(f'ALTER TABLE integrity_audit_checkpoint OWNER TO "{roles.runtime}"')
    with pytest.raises(
        RuntimeRoleError,
        match=rf'integrity_audit_checkpoint \({roles.runtime}\).*REASSIGN OWNED BY "{roles.runtime}"',
    ):
        grant_runtime_role(owner, roles.runtime)
    assert any(
        f"{roles.runtime} owns integrity_audit_checkpoint" in p for p in check_runtime_role(owner, roles.runtime)
    )
    roles.admin(f'ALTER TABLE integrity_audit_checkpoint OWNER TO "{roles.owner}"')

    roles.admin(f'ALTER ROLE "{roles.runtime}" SUPERUSER')
    with pytest.raises(RuntimeRoleError, match="is a superuser"):
        grant_runtime_role(owner, roles.runtime)
    roles.admin(f'ALTER ROLE "{roles.runtime}" NOSUPERUSER')


def test_grant_on_an_sqlite_store_says_roles_need_postgresql(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = IntegrityStore(StoreLocation.sqlite(tmp_path / "integrity.db"))
    with pytest.raises(RuntimeRoleError, match=r"SQLite file, which has no roles.*PostgreSQL"):
        grant_runtime_role(store, "integrity_runtime")


def test_a_refused_migration_is_explained_as_a_job_for_the_owner(pg_server) -> None:  # type: ignore[no-untyped-def]
    with _two_role_store(pg_server, revisions=("a1", "l1", "v1")) as stores:
        grant_runtime_role(stores.owner, stores.roles.runtime)
        with pytest.raises(ProgrammingError) as caught:
            upgrade(stores.runtime.engine)
        error = refused_migration(stores.runtime, caught.value)
        assert isinstance(error, SchemaNotCurrentError)
        message = str(error)
        assert f"role '{stores.roles.runtime}', which this process connects as, may not migrate it" in message
        assert f"run `airflow integrity db migrate --runtime-role {stores.roles.runtime}`" in message
        assert "as the owner" in message and "auto_migrate = False" in message
        assert refused_migration(stores.runtime, ValueError("not a database error")) is None


def test_runtime_role_with_auto_migrate_on_a_stale_schema_fails_naming_the_owner_job(pg_server) -> None:  # type: ignore[no-untyped-def]
    with _two_role_store(pg_server, revisions=("a1", "l1", "v1")) as stores:
        grant_runtime_role(stores.owner, stores.roles.runtime)
        with pytest.raises(SchemaNotCurrentError, match=r"may not migrate it.*airflow integrity db migrate"):
            stores.runtime.ensure_schema(auto_migrate=True)
