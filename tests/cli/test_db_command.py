"""``airflow integrity db ...`` through the real Airflow CLI, in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import AuditEvent
from airflow_integrity.store.audit.verify import verify
from airflow_integrity.store.connections import close_connections
from airflow_integrity.store.migrate import VERSION_TABLE, head_revision, upgrade
from tests.airflow_versions import airflow_version, integrity_cli

pytestmark = pytest.mark.integration
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
INTEGRITY = integrity_cli()


def _env(home: Path, store_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["AIRFLOW_HOME"] = str(home)
    if store_url:
        env["AIRFLOW_CONN_INTEGRITY_DEFAULT"] = store_url
    return env


def test_four_cli_migrations_at_once_leave_one_correct_schema(store_url: str, tmp_path: Path) -> None:
    env = _env(tmp_path, store_url)
    procs = [
        subprocess.Popen(
            [*INTEGRITY, "db", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for _ in range(4)
    ]
    outputs = [proc.communicate(timeout=240) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], outputs
    stdout = [out for out, _ in outputs]
    assert sum("Migrated integrity store" in out for out in stdout) == 1
    assert sum("already at" in out for out in stdout) == 3
    store = IntegrityStore(StoreLocation.from_url(store_url))
    with store.read() as conn:
        assert {"integrity_store_info", VERSION_TABLE} <= set(inspect(conn).get_table_names())
        versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        assert "+".join(sorted(versions)) == head_revision()
        assert conn.execute(text("SELECT count(*) FROM integrity_store_info")).scalar_one() == 1
    check = subprocess.run([*INTEGRITY, "db", "check"], env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    assert f"revision={head_revision()}" in check.stdout


def test_migrate_upgrades_a_store_at_revision_a1_whose_events_are_then_all_chained(
    store_url: str, tmp_path: Path
) -> None:
    store = IntegrityStore(StoreLocation.from_url(store_url))
    for revision in ("a1", "l1", "v1"):  # the schema before revision a2
        upgrade(store.engine, revision)
    assert store.describe().revision == "a1+l1+v1"
    log = AuditLog(store)
    for i in range(3):
        log.append(AuditEvent("task_instance.success", "worker-1", details={"i": i}))
    log.record(AuditEvent("task_instance.success", "worker-1", details={"i": 3}), chain_within=None)
    events = [AuditEvent("task_instance.success", "worker-1", details={"i": i}) for i in (4, 5)]
    log.record_many(events, batch=1000, chain_within=None)
    pending = 2 if store.backend == "postgresql" else 0
    with store.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM integrity_audit_event")).scalar_one() == 6 - pending
    close_connections()
    store.engine.dispose()

    env = _env(tmp_path, store_url)
    migrated = subprocess.run([*INTEGRITY, "db", "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    assert f"from a1+l1+v1 to {head_revision()}." in migrated.stdout
    assert "a4" in head_revision().split("+")
    check = subprocess.run([*INTEGRITY, "db", "check"], env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and f"revision={head_revision()} head={head_revision()}" in check.stdout

    try:
        result = verify(store)
        assert result.ok and result.pending == pending, result.summary()
        assert log.append(AuditEvent("task_instance.success", "worker-1", details={"i": 6})).seq == 7
        result = verify(store)
        assert result.ok and result.pending == 0 and result.head_seq == 7, result.summary()
        with store.read() as conn:
            bodies = conn.execute(text("SELECT body FROM integrity_audit_event ORDER BY seq")).scalars().all()
        assert [json.loads(body)["details"]["i"] for body in bodies] == list(range(7))
    finally:
        close_connections()
        store.engine.dispose()


def test_bad_connection_exits_1_naming_connection_and_problem(tmp_path: Path) -> None:
    env = _env(tmp_path, "postgresql://u:pw@127.0.0.1:9/integrity")
    result = subprocess.run([*INTEGRITY, "db", "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "connection 'integrity_default'" in result.stderr
    assert "127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_same_commands_run_without_airflows_cli(tmp_path: Path) -> None:
    """``python -m airflow_integrity.cli`` (for Airflow 3.1, whose CLI loads no provider commands) migrates and
    checks as ``airflow integrity`` does, and offers the same command tree."""
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    module = [sys.executable, "-m", "airflow_integrity.cli", "integrity"]
    migrated = subprocess.run([*module, "db", "migrate"], env=env, capture_output=True, text=True, check=False)
    assert migrated.returncode == 0, migrated.stderr
    assert f"to {head_revision()}" in migrated.stdout
    checked = subprocess.run([*module, "db", "check"], env=env, capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and f"revision={head_revision()}" in checked.stdout, checked.stderr
    for group in ("db", "audit", "ledger"):
        ours = subprocess.run([*module, group, "--help"], env=env, capture_output=True, text=True, check=False)
        airflows = subprocess.run(
            [AIRFLOW, "integrity", group, "--help"], env=env, capture_output=True, text=True, check=False
        )
        if airflow_version() < (3, 2):  # no provider commands in Airflow's CLI: the reason for the module
            assert ours.returncode == 0 and airflows.returncode != 0, (ours.stderr, airflows.stderr)
            continue
        assert ours.returncode == airflows.returncode == 0, (ours.stderr, airflows.stderr)
        commands = [line.split()[0] for line in airflows.stdout.splitlines() if line.startswith("    ")]
        assert commands and all(command in ours.stdout for command in commands), (commands, ours.stdout)
