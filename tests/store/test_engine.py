"""SQLite runs in WAL mode with a busy timeout; writers in many processes never see "database is locked"."""

from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore, StoreLocation, StoreUnavailableError

pytestmark = pytest.mark.integration

WRITERS = 8
ROWS_EACH = 150


def test_sqlite_store_runs_in_wal_mode_with_busy_timeout(tmp_path) -> None:
    store = IntegrityStore(StoreLocation.sqlite(tmp_path / "s.db"), busy_timeout=7)
    with store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def _write_rows(url: str, writer: int, barrier) -> None:  # type: ignore[no-untyped-def]
    store = IntegrityStore(StoreLocation.from_url(url))
    barrier.wait()
    for i in range(ROWS_EACH):
        with store.begin() as conn:
            # Read-then-write inside one transaction: the pattern that deadlocks with deferred transactions.
            count = conn.execute(text("SELECT count(*) FROM scratch")).scalar_one()
            conn.execute(
                text("INSERT INTO scratch (writer, seq, seen) VALUES (:w, :s, :c)"),
                {"w": writer, "s": i, "c": count},
            )


def test_concurrent_writer_processes_all_commit(store_url: str) -> None:
    store = IntegrityStore(StoreLocation.from_url(store_url))
    with store.begin() as conn:
        conn.execute(text("CREATE TABLE scratch (writer INTEGER, seq INTEGER, seen INTEGER)"))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    procs = [ctx.Process(target=_write_rows, args=(store_url, w, barrier)) for w in range(WRITERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(180)
    assert [proc.exitcode for proc in procs] == [0] * WRITERS
    with store.read() as conn:
        rows = conn.execute(text("SELECT writer, seq FROM scratch")).all()
    assert len(rows) == WRITERS * ROWS_EACH
    assert len(set(rows)) == WRITERS * ROWS_EACH


def test_unreachable_postgres_names_the_source_and_what_to_check() -> None:
    location = StoreLocation.from_url(
        "postgresql://u:hidden-pw@127.0.0.1:9/integrity", source="connection 'integrity_default'"
    )
    with pytest.raises(StoreUnavailableError) as err:
        IntegrityStore(location).ping()
    message = str(err.value)
    assert "connection 'integrity_default'" in message
    assert "127.0.0.1:9" in message
    assert "hidden-pw" not in message
