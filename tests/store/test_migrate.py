"""Migrations build one correct schema, are idempotent, and are safe from several processes at once."""

from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import inspect, text

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.migrate import VERSION_TABLE, head_revision

pytestmark = pytest.mark.integration


def _assert_one_correct_schema(store: IntegrityStore) -> None:
    with store.read() as conn:
        tables = set(inspect(conn).get_table_names())
        assert {"integrity_store_info", VERSION_TABLE} <= tables
        versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        assert "+".join(sorted(versions)) == head_revision()
        rows = conn.execute(text("SELECT id, store_id FROM integrity_store_info")).all()
        assert len(rows) == 1 and rows[0].id == 1 and len(rows[0].store_id) == 36


def test_migrate_creates_schema_once_and_is_idempotent(store_url: str) -> None:
    store = IntegrityStore(StoreLocation.from_url(store_url))
    first = store.migrate()
    assert (first.before, first.after, first.changed) == (None, head_revision(), True)
    second = store.migrate()
    assert (second.before, second.after, second.changed) == (head_revision(), head_revision(), False)
    _assert_one_correct_schema(store)
    status = store.describe()
    assert status.current and status.backend == store.backend
    assert status.store_id is not None


def _migrate_in_child(url: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    store = IntegrityStore(StoreLocation.from_url(url))
    barrier.wait()
    result = store.migrate()
    results.put((result.before, result.after))


def test_four_processes_migrating_at_once_leave_one_schema(store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [ctx.Process(target=_migrate_in_child, args=(store_url, barrier, results)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    outcomes = [results.get(timeout=5) for _ in procs]
    assert all(after == head_revision() for _, after in outcomes)
    # Exactly one process found the database empty; the others waited and found it current.
    assert sorted(before is None for before, _ in outcomes) == [False, False, False, True]
    _assert_one_correct_schema(IntegrityStore(StoreLocation.from_url(store_url)))
