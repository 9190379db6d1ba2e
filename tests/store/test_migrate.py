"""Migrations build one correct schema, are idempotent, and are safe from several processes at once."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from airflow_integrity.store import IntegrityStore, SchemaNotCurrentError, StoreLocation
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.connections import close_connections
from airflow_integrity.store.migrate import HEAD_REVISION, VERSION_TABLE, head_revision, upgrade

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


def test_the_head_the_package_knows_without_alembic_is_alembics_head() -> None:
    assert head_revision() == HEAD_REVISION


_FIRST_EVENT_OF_A_PROCESS = """
import json, sys
from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.store.audit.event import AuditEvent

IntegrityCheckHook().record_event(AuditEvent("probe.recorded", "probe"), chain=True)
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] == "alembic")))
"""


def test_a_process_opening_a_current_store_records_without_loading_alembic(store_url: str, tmp_path: Path) -> None:
    store = IntegrityStore(StoreLocation.from_url(store_url))
    store.migrate()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__INTEGRITY__"))}
    env.update(AIRFLOW_HOME=str(tmp_path / "home"), AIRFLOW_CONN_INTEGRITY_DEFAULT=store_url)
    child = subprocess.run(
        [sys.executable, "-c", _FIRST_EVENT_OF_A_PROCESS], env=env, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().splitlines()[-1]) == []
    recorded = [r for _, r in iter_records(store) if not isinstance(r, str) and r.event_type == "probe.recorded"]
    assert len(recorded) == 1
    close_connections()
    store.engine.dispose()


def test_a_store_behind_the_head_is_still_migrated_or_refused(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_integrity.store import store as store_module

    store = IntegrityStore(StoreLocation.from_url(store_url))
    for revision in ("a1", "l1", "v1"):  # the schema before revision a2
        upgrade(store.engine, revision)
    monkeypatch.setattr(store_module, "_checked", set())
    with pytest.raises(SchemaNotCurrentError, match=r"at schema revision a1\+l1\+v1"):
        store.ensure_schema(auto_migrate=False)
    store.ensure_schema(auto_migrate=True)
    assert store.describe().revision == HEAD_REVISION
    _assert_one_correct_schema(store)
    store.engine.dispose()
