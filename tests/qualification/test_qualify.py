"""``airflow integrity qualify`` on correct SQLite and PostgreSQL deployments, and on each broken one it must
name: triggers disabled, a runtime role that may UPDATE the trail, no checkpoint key. Its JSON report verifies
with the key, and what it wrote to the trail is recorded as qualification, not business."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from airflow_integrity.qualification.report import verify_report
from airflow_integrity.qualification.run import qualify
from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.checkpoints import create_checkpoint
from airflow_integrity.store.audit.event import AuditEvent
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.schema import AUDIT_TABLES
from airflow_integrity.store.audit.signing import CheckpointKey
from airflow_integrity.store.audit.verify import verify
from airflow_integrity.store.connections import close_connections
from airflow_integrity.store.roles import grant_runtime_role
from tests.airflow_versions import integrity_cli
from tests.pg_roles import two_roles

pytestmark = pytest.mark.integration
SECRET = "qualification-test-secret-0123456789"
KEY = CheckpointKey.hmac_sha256(SECRET)
KEY_ENV = json.dumps({"conn_type": "generic", "password": SECRET})


@dataclass
class Deployment:
    """A store in use, reached as the components reach it (PostgreSQL: the runtime role), and as its owner."""

    store: IntegrityStore
    owner: IntegrityStore
    url: str


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deployment]:
    """Migrated (PostgreSQL: by the owner, the runtime role granted), some business events, a signed checkpoint;
    the key configured and the components' connection pointing at the store."""
    monkeypatch.setenv("AIRFLOW_CONN_AUDIT_KEY", KEY_ENV)
    monkeypatch.setenv("AIRFLOW__INTEGRITY__CHECKPOINT_KEY_CONN_ID", "audit_key")
    monkeypatch.setenv("AIRFLOW__INTEGRITY__SPOOL_DIR", str(tmp_path / "spool"))
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'integrity.db'}"
        store = IntegrityStore(StoreLocation.from_url(url))
        store.migrate()
        yield _in_use(Deployment(store, store, url), monkeypatch)
        return
    with two_roles(request.getfixturevalue("pg_server")) as roles:
        owner = IntegrityStore(StoreLocation.from_url(roles.owner_url))
        runtime = IntegrityStore(StoreLocation.from_url(roles.runtime_url))
        try:
            owner.migrate()
            grant_runtime_role(owner, roles.runtime)
            yield _in_use(Deployment(runtime, owner, roles.runtime_url), monkeypatch)
        finally:
            close_connections()
            owner.engine.dispose()
            runtime.engine.dispose()


def _in_use(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", deployment.url)
    log = AuditLog(deployment.store)
    log.append_many([AuditEvent("claim.paid", "worker", business_key=f"claim-{i}") for i in range(3)])
    create_checkpoint(deployment.store, KEY)
    return deployment


@contextmanager
def triggers_off(store: IntegrityStore) -> Iterator[None]:
    """The trail's append-only triggers switched off (committed, as an administrator would), then back on."""
    tables = AUDIT_TABLES[store.backend]
    if store.backend == "postgresql":
        with store.begin() as conn:
            for table in tables:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        yield
        with store.begin() as conn:
            for table in tables:
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        return
    with store.begin() as conn:
        triggers = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
        for name, _ in triggers:
            conn.execute(text(f"DROP TRIGGER {name}"))
    yield
    with store.begin() as conn:
        for _, sql in triggers:
            conn.exec_driver_sql(sql)


def _outcomes(report) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    return {check.name: check.passed for check in report.checks}


def _check(report, name: str):  # type: ignore[no-untyped-def]
    return next(check for check in report.checks if check.name == name)


@pytest.mark.requirement("annex11.4", "part11.11.10a")
def test_a_correct_deployment_qualifies_and_its_signed_report_verifies(deployment: Deployment) -> None:
    store = deployment.store
    report, signer = qualify()

    assert report.passed, report.text()
    assert list(_outcomes(report)) == [
        "installation",
        "configuration",
        "store",
        "audit_probe",
        "protections",
        "tamper_detection",
        "ledger_race",
        "checkpoint",
        "clock",
        "spool",
    ]
    assert _check(report, "ledger_race").facts["ran"] == 1
    assert _check(report, "tamper_detection").facts["edited"]["first_bad_seq"] == 2
    refused = _check(report, "protections").facts
    assert refused["UPDATE"] == refused["DELETE"] == "refused"
    if store.backend == "postgresql":
        assert refused["TRUNCATE"] == "refused"

    document = report.signed(signer)
    assert verify_report(json.loads(json.dumps(document, default=str)), [KEY])[0]
    document["checks"][0]["passed"] = False
    assert verify_report(document, [KEY]) == (
        False,
        "the signature does not match the report: it was changed after it was signed",
    )

    # The trail is honest about what qualification wrote: probe events and a completion, under its own key.
    story = [
        (r.event_type, r.actor.split("@")[0])
        for _, r in iter_records(store, business_key=f"qualification-{report.qualification_id}")
        if not isinstance(r, str)
    ]
    assert story == [("qualification.probe", "qualify")] * 3 + [("qualification.completed", "qualify")]
    assert verify(store, key=KEY).ok
    with store.read() as conn:
        namespaces = set(conn.execute(text("SELECT DISTINCT namespace FROM integrity_ledger")).scalars())
    assert namespaces == {"qualification"}


def test_without_a_checkpoint_key_the_checkpoint_check_fails_naming_why(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__INTEGRITY__CHECKPOINT_KEY_CONN_ID")
    report, signer = qualify()
    assert not report.passed and signer is None
    assert [name for name, passed in _outcomes(report).items() if not passed] == ["checkpoint"]
    assert "no checkpoint key configured" in _check(report, "checkpoint").summary
    assert report.signed(signer)["signature"] is None


def test_disabled_triggers_fail_the_protections_check(deployment: Deployment) -> None:
    with triggers_off(deployment.owner):  # as an administrator would, committed
        report, _ = qualify()
    failed = [name for name, passed in _outcomes(report).items() if not passed]
    assert failed == ["protections"], report.text()
    summary = _check(report, "protections").summary
    assert "append-only triggers of integrity_audit_event are missing" in summary
    if deployment.store.backend == "sqlite":
        # Nothing else stands in the way on SQLite; on PostgreSQL the runtime role still lacks the privilege.
        assert "UPDATE of the trail was accepted (and rolled back)" in summary
    assert verify(deployment.store, key=KEY).ok  # the attempts were rolled back


def test_a_runtime_role_that_may_update_the_trail_fails_the_protections_check(
    pg_server,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AUDIT_KEY", KEY_ENV)
    monkeypatch.setenv("AIRFLOW__INTEGRITY__CHECKPOINT_KEY_CONN_ID", "audit_key")
    monkeypatch.setenv("AIRFLOW__INTEGRITY__SPOOL_DIR", str(tmp_path / "spool"))
    with two_roles(pg_server) as roles:
        owner = IntegrityStore(StoreLocation.from_url(roles.owner_url))
        owner.migrate()
        grant_runtime_role(owner, roles.runtime)
        _in_use(Deployment(owner, owner, roles.owner_url), monkeypatch)
        try:
            # As deployed: the components (and qualify) connect as the runtime role.
            monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", roles.runtime_url)
            clean, _ = qualify()
            assert clean.passed, clean.text()
            assert _check(clean, "protections").facts["runtime_role_checked"] == roles.runtime

            roles.admin(f'GRANT UPDATE ON integrity_audit_event TO "{roles.runtime}"')
            close_connections()
            report, _ = qualify()
            assert [name for name, passed in _outcomes(report).items() if not passed] == ["protections"]
            summary = _check(report, "protections").summary
            assert f"runtime role {roles.runtime!r}" in summary and "UPDATE" in summary

            # Run as the owner, it checks the role the components use when told which; untold, it fails.
            monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", roles.owner_url)
            as_owner, _ = qualify(runtime_role=roles.runtime)
            assert f"runtime role {roles.runtime!r}" in _check(as_owner, "protections").summary
            untold, _ = qualify()
            assert "connected as the store's owner" in _check(untold, "protections").summary
        finally:
            close_connections()
            owner.engine.dispose()


def test_the_real_airflow_cli_qualifies_writes_the_signed_report_and_checks_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'integrity.db'}"
    store = IntegrityStore(StoreLocation.from_url(url))
    store.migrate()
    create_checkpoint(store, KEY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW_CONN_INTEGRITY_DEFAULT": url,
            "AIRFLOW_CONN_AUDIT_KEY": KEY_ENV,
            "AIRFLOW__INTEGRITY__CHECKPOINT_KEY_CONN_ID": "audit_key",
        }
    )
    report_file = tmp_path / "qualification.json"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*integrity_cli(), "qualify", *args], env=env, capture_output=True, text=True, timeout=300
        )

    passed = cli("--output", str(report_file))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "QUALIFIED: every check passed" in passed.stdout
    assert json.loads(report_file.read_text())["passed"] is True
    checked = cli("--verify-report", str(report_file))
    assert checked.returncode == 0 and checked.stdout.startswith("VERIFIED: signed by hmac-sha256"), checked.stdout

    signed_text = report_file.read_text()
    report_file.write_text(signed_text.replace('"passed": true', '"passed": false', 1))
    assert cli("--verify-report", str(report_file)).returncode == 2
    # A key written twice (a reader may see one value, a parser the other) is refused, not verified.
    report_file.write_text(signed_text.replace('"passed": true', '"passed": false, "passed": true', 1))
    twice = cli("--verify-report", str(report_file))
    assert twice.returncode == 2 and "a key appears twice" in twice.stderr
    # An existing report is never overwritten.
    kept = cli("--output", str(report_file))
    assert kept.returncode == 1 and "never overwritten" in kept.stderr

    env.pop("AIRFLOW__INTEGRITY__CHECKPOINT_KEY_CONN_ID")
    failed = cli("--json")
    assert failed.returncode == 1
    document = json.loads(failed.stdout)
    assert document["passed"] is False and document["signature"] is None
    assert [c["name"] for c in document["checks"] if not c["passed"]] == ["checkpoint"]
