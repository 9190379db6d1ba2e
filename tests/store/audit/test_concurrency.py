"""Many writer processes produce one gapless, fork-free chain; a writer killed mid-append leaves it intact."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import AuditEvent
from airflow_integrity.store.audit.schema import EVENT, INTAKE
from airflow_integrity.store.audit.verify import verify

pytestmark = pytest.mark.integration
WRITERS = 8
# SQLite serialises writers on its file lock with a sleeping busy handler: fewer events keep the test short.
EVENTS_PER_WRITER = {"postgresql": 200, "sqlite": 100}


def _event_ids(store: IntegrityStore) -> dict[str, int]:
    """event id -> sequence number of every event in the chain (read from the hashed bodies)."""
    with store.read() as conn:
        rows = conn.execute(text(f"SELECT seq, body FROM {EVENT}")).all()
    ids: dict[str, int] = {}
    for seq, body in rows:
        event_id = json.loads(body)["event_id"]
        assert event_id not in ids, f"event {event_id} is chained twice"
        ids[event_id] = seq
    return ids


def _writer(url: str, writer: int, count: int, barrier: Any, results: Any) -> None:
    log = AuditLog(IntegrityStore(StoreLocation.from_url(url)))
    barrier.wait()
    appended = []
    for i in range(count):
        record = log.append(
            AuditEvent(
                "task_instance.success", f"writer-{writer}", business_key=f"w{writer}-{i}", details={"i": i}
            )
        )
        appended.append((record.event_id, record.seq, record.hash))
    results.put((writer, appended))


def _recorder(url: str, writer: int, count: int, barrier: Any, results: Any) -> None:
    log = AuditLog(IntegrityStore(StoreLocation.from_url(url)))
    barrier.wait()
    ids = [
        log.record(AuditEvent("heartbeat", f"recorder-{writer}", details={"i": i})).event_id for i in range(count)
    ]
    results.put((writer, ids))


@pytest.mark.requirement("alcoa.consistent")
def test_eight_processes_appending_at_once_leave_one_gapless_chain(store_url: str, store: IntegrityStore) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    results = ctx.Queue()
    count = EVENTS_PER_WRITER[store.backend]
    procs = [ctx.Process(target=_writer, args=(store_url, n, count, barrier, results)) for n in range(WRITERS)]
    for proc in procs:
        proc.start()
    outcomes = dict(results.get(timeout=180) for _ in procs)
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0

    total = WRITERS * count
    result = verify(store)
    assert result.ok, result.summary()
    assert (result.count, result.head_seq) == (total, total)
    stored = _event_ids(store)
    with store.read() as conn:
        hashes = dict(conn.execute(text(f"SELECT seq, hash FROM {EVENT}")).all())
    assert sorted(stored.values()) == list(range(1, total + 1))
    for writer, appended in outcomes.items():
        assert len(appended) == count
        # Every append is in the chain exactly where append() said, and a writer's events keep their order.
        assert all(stored[event_id] == seq and hashes[seq] == digest for event_id, seq, digest in appended)
        seqs = [seq for _, seq, _ in appended]
        assert seqs == sorted(seqs), f"writer {writer} events out of order"
    assert len(stored) == total


def test_eight_processes_recording_at_once_leave_every_event_in_one_chain(
    store_url: str, store: IntegrityStore
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    results = ctx.Queue()
    count = EVENTS_PER_WRITER[store.backend] // 2
    procs = [ctx.Process(target=_recorder, args=(store_url, n, count, barrier, results)) for n in range(WRITERS)]
    for proc in procs:
        proc.start()
    recorded = [event_id for _ in procs for event_id in results.get(timeout=180)[1]]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    AuditLog(store).chain_pending()
    result = verify(store)
    assert result.ok and result.pending == 0, result.summary()
    stored = _event_ids(store)
    assert sorted(stored.values()) == list(range(1, WRITERS * count + 1))
    assert set(stored) == set(recorded) and len(recorded) == WRITERS * count


def _endless_writer(url: str, acknowledged: Any) -> None:
    log = AuditLog(IntegrityStore(StoreLocation.from_url(url)))
    i = 0
    while True:
        record = log.append(AuditEvent("heartbeat", "doomed-writer", details={"i": i}))
        acknowledged.put(record.event_id)
        i += 1


@pytest.mark.requirement("alcoa.enduring")
def test_writer_killed_mid_append_leaves_the_chain_intact_and_every_acknowledged_event(
    store_url: str, store: IntegrityStore
) -> None:
    ctx = multiprocessing.get_context("spawn")
    acknowledged = ctx.Queue()
    proc = ctx.Process(target=_endless_writer, args=(store_url, acknowledged))
    proc.start()
    seen = [acknowledged.get(timeout=60) for _ in range(30)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    while not acknowledged.empty():
        seen.append(acknowledged.get(timeout=5))
    # Whatever the kill interrupted is either fully recorded or absent; the chain goes on.
    survivor = AuditLog(store).append(AuditEvent("after.kill", "test"))
    result = verify(store)
    assert result.ok, result.summary()
    assert result.head_seq == survivor.seq
    stored = _event_ids(store)
    assert set(seen) <= set(stored)
    assert survivor.seq == len(stored)


def test_an_event_committed_while_another_writer_chains_is_chained_later(pg_database: str) -> None:
    """A transaction still open when a chaining looked is chained by the next append, not skipped."""
    import psycopg

    store = IntegrityStore(StoreLocation.from_url(pg_database))
    store.migrate()
    log = AuditLog(store)
    log.append(AuditEvent("before", "test"))
    late_id = str(uuid.uuid4())
    with psycopg.connect(pg_database) as late:
        late.execute(
            f"INSERT INTO {INTAKE} (event_id, event_type, actor, details) VALUES (%s, 'late', 'slow', '{{}}')",
            (late_id,),
        )
        # Still uncommitted: this append's chaining cannot see it (it is in that snapshot's in-progress list).
        middle = log.append(AuditEvent("middle", "test"))
        late.commit()
    assert late_id not in _event_ids(store)
    assert verify(store).pending == 1
    assert log.chain_pending() == 1
    after = log.append(AuditEvent("after", "test"))
    late_seq = _event_ids(store)[late_id]
    assert middle.seq < late_seq < after.seq
    result = verify(store)
    assert result.ok and result.pending == 0 and result.head_seq == 4


def test_an_orphaned_intake_row_is_chained_by_the_next_append(pg_database: str) -> None:
    import psycopg

    store = IntegrityStore(StoreLocation.from_url(pg_database))
    store.migrate()
    log = AuditLog(store)
    log.append(AuditEvent("first", "test"))
    orphan = str(uuid.uuid4())
    with psycopg.connect(pg_database, autocommit=True) as conn:
        # A writer whose session died between its intake commit and the chaining.
        conn.execute(
            f"INSERT INTO {INTAKE} (event_id, event_type, actor, details) VALUES (%s, 'orphan', 'dead', '{{}}')",
            (orphan,),
        )
    time.sleep(0.01)
    nxt = log.append(AuditEvent("next", "test"))
    assert _event_ids(store)[orphan] == 2 and nxt.seq == 3
    assert verify(store).ok
