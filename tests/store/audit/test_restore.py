"""A PostgreSQL store moved to another cluster with pg_dump and a restore keeps chaining every event.

Unchained intake rows are found from the transaction-id horizon stored with the last chained event. A new
cluster has transaction ids of its own: lower than the restored horizon (a fresh cluster), higher (a busy
one), or lower at the restore and higher by the next chaining. Every event recorded before or after the
move must end up in the chain, in order, with no gap.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import AuditEvent
from airflow_integrity.store.audit.schema import EVENT, INTAKE
from airflow_integrity.store.audit.verify import verify
from airflow_integrity.store.connections import close_connections
from tests.pg import EmbeddedCluster, embedded_cluster, pg_program

pytestmark = pytest.mark.integration
DATABASE = "integrity"
# Transactions run on the first cluster before its last chaining, so that its horizon is well above the
# transaction ids of a freshly initialised cluster.
XIDS_ON_FIRST_CLUSTER = 3000
EXACT_SEARCH = "exact search"


def _event(i: int) -> AuditEvent:
    return AuditEvent("task_instance.success", "worker-1@host-a", business_key=f"claim-{i}", details={"i": i})


def _store(uri: str, stack: ExitStack) -> IntegrityStore:
    store = IntegrityStore(StoreLocation.from_url(uri))
    stack.callback(store.engine.dispose)
    return store


def _scalar(uri: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None


def _xact_id(uri: str) -> int:
    """The cluster's next transaction id, as the intake table's ``txid`` default would record it."""
    return int(_scalar(uri, "SELECT pg_current_xact_id()::text::bigint"))


def _consume_xids(uri: str, count: int) -> None:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        for _ in range(count):
            conn.execute("SELECT pg_current_xact_id()")


def _horizon(uri: str) -> int:
    return int(_scalar(uri, f"SELECT chain_xmax FROM {EVENT} ORDER BY seq DESC LIMIT 1"))


def _copy(source: str, target: EmbeddedCluster, dump: Path, plain: bool) -> str:
    """Dump database ``source`` and restore it into a new database of ``target``; return its URI."""
    fmt = "plain" if plain else "custom"
    subprocess.run(
        [str(pg_program("pg_dump")), f"--format={fmt}", f"--file={dump}", f"--dbname={source}"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    target.create_database(DATABASE)
    uri = target.uri(DATABASE)
    if plain:
        restore = [str(pg_program("psql")), "--no-psqlrc", "--set=ON_ERROR_STOP=1", "--quiet", f"--file={dump}"]
    else:
        restore = [str(pg_program("pg_restore")), "--exit-on-error", "--no-owner", str(dump)]
    subprocess.run([*restore, f"--dbname={uri}"], check=True, capture_output=True, timeout=120)
    return uri


def _record_on_first_cluster(uri: str, stack: ExitStack, pending: int) -> IntegrityStore:
    """Events 0..2 appended, event 3 recorded and chained, events 4.. recorded and left unchained."""
    store = _store(uri, stack)
    store.migrate()
    log = AuditLog(store)
    for i in range(3):
        log.append(_event(i))
    _consume_xids(uri, XIDS_ON_FIRST_CLUSTER)
    log.record(_event(3), chain_within=None)
    log.chain_pending()
    assert verify(store).pending == 0
    if pending:
        log.record_many([_event(4 + k) for k in range(pending)], batch=1000, chain_within=None)
    assert verify(store).pending == pending
    return store


def _assert_every_event_chained_in_order(store: IntegrityStore, count: int) -> None:
    """Events 0..count-1 are the chain, in order, seq 1..count; nothing waits; verify passes."""
    with store.read() as conn:
        chained = conn.execute(text(f"SELECT seq, body FROM {EVENT} ORDER BY seq")).all()
        intake = set(conn.execute(text(f"SELECT event_id FROM {INTAKE}")).scalars())
    assert [seq for seq, _ in chained] == list(range(1, count + 1))
    bodies = [json.loads(body) for _, body in chained]
    assert [body["details"]["i"] for body in bodies] == list(range(count))
    assert {body["event_id"] for body in bodies} == intake
    result = verify(store)
    assert result.ok and result.pending == 0 and result.head_seq == count, result.summary()


@contextmanager
def _log_messages(uri: str) -> Iterator[tuple[Any, list[str]]]:
    """A connection that receives the store functions' LOG messages, and the list they are collected in."""
    import psycopg

    messages: list[str] = []
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.add_notice_handler(lambda diag: messages.append(diag.message_primary or ""))
        conn.execute("SET client_min_messages = log")
        yield conn, messages


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Undone in reverse order when the test ends, however it ends."""
    with ExitStack() as exit_stack:
        yield exit_stack


def _clusters(tmp_path: Path, stack: ExitStack) -> tuple[EmbeddedCluster, EmbeddedCluster]:
    """Two new clusters, removed after the test; audit connections to them are closed first."""
    first = stack.enter_context(embedded_cluster(tmp_path / "first"))
    second = stack.enter_context(embedded_cluster(tmp_path / "second"))
    stack.callback(close_connections)
    return first, second


@pytest.mark.requirement("annex11.7", "part11.11.10c")
@pytest.mark.parametrize("pending", [2, 0], ids=["some-unchained-at-the-dump", "all-chained-at-the-dump"])
def test_a_store_restored_into_a_fresh_cluster_chains_every_event(
    tmp_path: Path, stack: ExitStack, pending: int
) -> None:
    first, second = _clusters(tmp_path, stack)
    first.create_database(DATABASE)
    _record_on_first_cluster(first.uri(DATABASE), stack, pending)
    horizon = _horizon(first.uri(DATABASE))

    uri = _copy(first.uri(DATABASE), second, tmp_path / "store.dump", plain=False)
    # The case this test is about: the new cluster's transaction ids are below the restored horizon.
    assert _xact_id(uri) < horizon
    restored = _store(uri, stack)
    assert restored.migrate().changed is False
    result = verify(restored)
    assert result.ok and result.pending == pending, result.summary()

    log = AuditLog(restored)
    n = 4 + pending
    log.record_many([_event(n), _event(n + 1)], batch=1000, chain_within=None)
    appended = log.append(_event(n + 2))
    assert appended.seq == n + 3
    log.record(_event(n + 3), batch=1000, chain_within=None)
    log.chain_pending()
    _assert_every_event_chained_in_order(restored, n + 4)


def test_a_store_restored_into_a_cluster_with_higher_transaction_ids_chains_every_event(
    tmp_path: Path, stack: ExitStack
) -> None:
    """New rows there are above the restored horizon: the usual search finds them, as before."""
    first, second = _clusters(tmp_path, stack)
    second.advance_xid_epoch(1)
    first.create_database(DATABASE)
    _record_on_first_cluster(first.uri(DATABASE), stack, pending=2)
    horizon = _horizon(first.uri(DATABASE))

    uri = _copy(first.uri(DATABASE), second, tmp_path / "store.sql", plain=True)
    assert _xact_id(uri) > horizon
    restored = _store(uri, stack)
    # The restore rewrote the rows of the two unchained events: that is not an alteration.
    result = verify(restored)
    assert result.ok and result.pending == 2, result.summary()
    assert any("restored" in warning for warning in result.warnings), result.warnings

    log = AuditLog(restored)
    log.record_many([_event(6), _event(7)], batch=1000, chain_within=None)
    assert log.append(_event(8)).seq == 9
    _assert_every_event_chained_in_order(restored, 9)


def test_events_recorded_before_a_new_cluster_passes_the_restored_horizon_are_chained(
    tmp_path: Path, stack: ExitStack
) -> None:
    """Restored into a fresh cluster, an event recorded and left unchained (its writer died), the cluster's
    transaction ids then run past the restored horizon before anyone chains: the event is still chained."""
    first, second = _clusters(tmp_path, stack)
    first.create_database(DATABASE)
    _record_on_first_cluster(first.uri(DATABASE), stack, pending=2)
    horizon = _horizon(first.uri(DATABASE))

    uri = _copy(first.uri(DATABASE), second, tmp_path / "store.dump", plain=False)
    orphan = _scalar(
        uri,
        f"INSERT INTO {INTAKE} (event_id, event_type, actor, business_key, details) "
        "VALUES (gen_random_uuid()::text, 'task_instance.success', 'worker-1@host-a', 'claim-6', '{\"i\":6}') "
        "RETURNING txid",
    )
    assert orphan < horizon
    second.advance_xid_epoch(1)
    assert _xact_id(uri) > horizon

    with _log_messages(uri) as (conn, messages):
        assert conn.execute("SELECT integrity_audit_chain(true)").fetchone()[0] == 3
        assert sum(EXACT_SEARCH in m for m in messages) == 1, messages
        assert conn.execute("SELECT integrity_audit_chain(true)").fetchone()[0] == 0
        restored = _store(uri, stack)
        AuditLog(restored).append(_event(7))
        assert conn.execute("SELECT integrity_audit_chain(true)").fetchone()[0] == 0
        assert sum(EXACT_SEARCH in m for m in messages) == 1, messages
    _assert_every_event_chained_in_order(restored, 8)


def test_chaining_within_one_cluster_keeps_the_horizon_search_after_a_freeze(
    tmp_path: Path, stack: ExitStack
) -> None:
    """The exact search is for a changed transaction-id history only: frozen rows keep their xmin, and
    chaining within one cluster never falls back to it."""
    cluster = stack.enter_context(embedded_cluster(tmp_path / "cluster"))
    stack.callback(close_connections)
    cluster.create_database(DATABASE)
    uri = cluster.uri(DATABASE)
    store = _store(uri, stack)
    store.migrate()
    log = AuditLog(store)
    for i in range(3):
        log.append(_event(i))
    log.record_many([_event(3), _event(4)], batch=1000, chain_within=None)
    with _log_messages(uri) as (conn, messages):
        conn.execute("CREATE EXTENSION pg_visibility")
        conn.execute(f"VACUUM (FREEZE) {EVENT}")
        assert conn.execute(f"SELECT bool_and(all_frozen) FROM pg_visibility_map('{EVENT}')").fetchone()[0]
        conn.execute("SELECT integrity_audit_chain(true)")
        log.append(_event(5))
        log.record(_event(6), batch=1000, chain_within=None)
        conn.execute("SELECT integrity_audit_chain(true)")
    assert not any(EXACT_SEARCH in m for m in messages), messages
    _assert_every_event_chained_in_order(store, 7)
