"""``airflow integrity db migrate --runtime-role`` and ``db check --runtime-role`` through the real Airflow CLI,
against a real PostgreSQL server with an owner role and a runtime role."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.migrate import head_revision, upgrade
from airflow_integrity.store.roles import grant_runtime_role
from tests.airflow_versions import integrity_cli
from tests.pg_roles import TwoRoles, two_roles

pytestmark = pytest.mark.integration
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def _airflow(home: Path, *args: str, **connections: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["AIRFLOW_HOME"] = str(home)
    env.update({f"AIRFLOW_CONN_{name.upper()}": url for name, url in connections.items()})
    return subprocess.run([*integrity_cli(), "db", *args], env=env, capture_output=True, text=True, timeout=180)


def _refused(url: str, sql: str) -> str:
    import psycopg

    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
        conn.execute(sql)
    return str(caught.value)


@pytest.fixture
def roles(pg_server) -> TwoRoles:  # type: ignore[no-untyped-def]
    with two_roles(pg_server) as made:
        yield made


def test_migrate_as_owner_with_runtime_role_grants_exactly_the_runtime_privileges_and_can_run_again(
    roles: TwoRoles, tmp_path: Path
) -> None:
    owner_conn = {"integrity_owner": roles.owner_url}
    migrated = _airflow(
        tmp_path, "migrate", "--conn-id", "integrity_owner", "--runtime-role", roles.runtime, **owner_conn
    )
    assert migrated.returncode == 0, migrated.stderr
    assert f"from empty to {head_revision()}." in migrated.stdout
    assert f"Runtime role '{roles.runtime}' may CONNECT" in migrated.stdout
    assert "SELECT, INSERT (every column but id), UPDATE on tables: integrity_ledger\n" in migrated.stdout
    assert (
        "SELECT, INSERT (every column but id, txid, recorded_at, seal) on tables: integrity_audit_intake\n"
        in migrated.stdout
    )
    # The chain and the ledger history: read only (the store's own functions write them).
    assert (
        "SELECT on tables: integrity_alembic_version, integrity_audit_event, integrity_ledger_history, "
        "integrity_store_info, integrity_validation_secret\n" in migrated.stdout
    )
    assert "UPDATE on sequences: integrity_audit_flush_seq\n" in migrated.stdout

    checked = _airflow(tmp_path, "check", "--runtime-role", roles.runtime, integrity_default=roles.runtime_url)
    assert checked.returncode == 0, checked.stderr
    assert f"runtime role '{roles.runtime}' holds exactly the store's runtime privileges." in checked.stdout
    assert "permission denied for table integrity_audit_event" in _refused(
        roles.runtime_url, "DELETE FROM integrity_audit_event"
    )
    assert "permission denied for table integrity_audit_event" in _refused(
        roles.runtime_url,
        "INSERT INTO integrity_audit_event (seq, body, prev_hash, hash) VALUES (1, '{}', repeat('0', 64), '0')",
    )
    assert "must be owner" in _refused(roles.runtime_url, "ALTER TABLE integrity_audit_intake DISABLE TRIGGER ALL")

    again = _airflow(
        tmp_path, "migrate", "--conn-id", "integrity_owner", "--runtime-role", roles.runtime, **owner_conn
    )
    assert again.returncode == 0, again.stderr
    assert f"is already at {head_revision()}." in again.stdout
    assert again.stdout.splitlines()[1:] == migrated.stdout.splitlines()[1:]


def test_runtime_role_running_migrate_on_a_stale_schema_is_told_to_have_the_owner_run_it(
    roles: TwoRoles, tmp_path: Path
) -> None:
    owner = IntegrityStore(StoreLocation.from_url(roles.owner_url))
    try:
        for revision in ("a1", "l1", "v1"):  # a schema from before revision a2
            upgrade(owner.engine, revision)
        grant_runtime_role(owner, roles.runtime)
    finally:
        owner.engine.dispose()

    refused = _airflow(tmp_path, "migrate", integrity_default=roles.runtime_url)
    assert refused.returncode == 1
    assert f"role '{roles.runtime}', which this process connects as, may not migrate it" in refused.stderr
    assert f"airflow integrity db migrate --runtime-role {roles.runtime}" in refused.stderr
    assert "auto_migrate = False" in refused.stderr and "Traceback" not in refused.stderr

    # The owner migrates without naming the runtime role: it is reminded that the role needs its grants again.
    migrated = _airflow(tmp_path, "migrate", integrity_default=roles.owner_url)
    assert migrated.returncode == 0, migrated.stderr
    assert f"from a1+l1+v1 to {head_revision()}." in migrated.stdout
    assert f"note: role '{roles.runtime}' holds privileges on this store" in migrated.stdout
    assert f"`airflow integrity db migrate --runtime-role {roles.runtime}`" in migrated.stdout


def test_runtime_role_option_refuses_sqlite_unknown_roles_and_the_owner_naming_the_fix(
    roles: TwoRoles, tmp_path: Path
) -> None:
    sqlite = tmp_path / "integrity.db"
    on_sqlite = _airflow(
        tmp_path, "migrate", "--runtime-role", "integrity_runtime", integrity_default=f"sqlite:///{sqlite}"
    )
    assert on_sqlite.returncode == 1
    assert "is an SQLite file, which has no roles" in on_sqlite.stderr and "PostgreSQL" in on_sqlite.stderr
    assert not sqlite.exists()  # refused before migrating

    unknown = _airflow(
        tmp_path, "migrate", "--runtime-role", "integrity_runtme", integrity_default=roles.owner_url
    )
    assert unknown.returncode == 1
    assert "PostgreSQL role 'integrity_runtme' does not exist" in unknown.stderr
    assert 'CREATE ROLE "integrity_runtme" LOGIN' in unknown.stderr
    assert "Migrated" not in unknown.stdout and "Traceback" not in unknown.stderr

    itself = _airflow(tmp_path, "migrate", "--runtime-role", roles.owner, integrity_default=roles.owner_url)
    assert itself.returncode == 1 and "is the role this command connects as" in itself.stderr


def test_check_with_runtime_role_names_each_right_beyond_the_runtime_privileges(
    roles: TwoRoles, tmp_path: Path
) -> None:
    owner = IntegrityStore(StoreLocation.from_url(roles.owner_url))
    try:
        owner.migrate()
        grant_runtime_role(owner, roles.runtime)
    finally:
        owner.engine.dispose()
    roles.admin(f'GRANT UPDATE, TRUNCATE ON integrity_ledger_history TO "{roles.runtime}"')
    roles.admin(f'GRANT INSERT (id) ON integrity_ledger_blob TO "{roles.runtime}"')

    checked = _airflow(tmp_path, "check", "--runtime-role", roles.runtime, integrity_default=roles.owner_url)
    assert checked.returncode == 1
    errors = [line for line in checked.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {roles.runtime} can INSERT column id of table integrity_ledger_blob, which the product never "
        f'names, through its own grant (REVOKE INSERT (id) ON TABLE integrity_ledger_blob FROM "{roles.runtime}")',
        *(
            f"error: {roles.runtime} can {right} on table integrity_ledger_history through its own grant (REVOKE "
            f'{right} ON TABLE integrity_ledger_history FROM "{roles.runtime}")'
            for right in ("TRUNCATE", "UPDATE")
        ),
    ], checked.stderr
