"""``airflow integrity audit verify|export|checkpoint``: the command functions, called in-process."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import text

from airflow_integrity.cli import audit_command
from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import AuditEvent
from airflow_integrity.store.audit.schema import EVENT
from tests.airflow_versions import integrity_cli
from tests.store.audit.test_tamper import tampering

pytestmark = pytest.mark.integration
SECRET = "cli-test-hmac-secret-0123456789"


def _args(**values: object) -> argparse.Namespace:
    defaults: dict[str, object] = {
        "conn_id": None,
        "key_conn_id": None,
        "from_checkpoint": False,
        "format": "jsonl",
    }
    defaults |= dict.fromkeys(("business_key", "dag_id", "run_id", "since", "until", "output"))
    return argparse.Namespace(**{**defaults, **values})


@pytest.fixture
def trail(store_conn_env: str) -> IntegrityStore:
    store = IntegrityStore(StoreLocation.from_url(store_conn_env))
    store.migrate()
    AuditLog(store).append_many(
        [
            AuditEvent("task_instance.success", "worker", business_key=f"claim-{i % 2}", details={"i": i})
            for i in range(5)
        ]
    )
    return store


@pytest.fixture
def hmac_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_AUDIT_KEY", json.dumps({"conn_type": "generic", "password": SECRET}))
    return "audit_key"


def test_verify_prints_count_and_head_hash(trail: IntegrityStore, capsys: pytest.CaptureFixture[str]) -> None:
    audit_command.verify(_args())
    out = capsys.readouterr().out
    head = AuditLog(trail).head()
    assert out.startswith("OK: 5 events verified") and head.hash in out


def test_verify_exits_1_naming_the_first_bad_event(
    trail: IntegrityStore, capsys: pytest.CaptureFixture[str]
) -> None:
    with tampering(trail) as conn:
        conn.execute(text(f"UPDATE {EVENT} SET body = replace(body, 'worker', 'mallory') WHERE seq = 3"))
    with pytest.raises(SystemExit) as exited:
        audit_command.verify(_args())
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert "first bad sequence number 3: hash mismatch" in out and "2 events verified before it" in out


def test_checkpoint_then_verify_with_the_key(
    trail: IntegrityStore, hmac_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    audit_command.checkpoint(_args(key_conn_id=[hmac_key]))
    made = capsys.readouterr().out
    assert made.startswith("Checkpoint 1: seq 5, head hash ") and "hmac-sha256" in made
    audit_command.verify(_args(key_conn_id=[hmac_key]))
    assert "1 checkpoint(s) matched, signatures verified" in capsys.readouterr().out
    with tampering(trail) as conn:
        conn.execute(text(f"DELETE FROM {EVENT} WHERE seq >= 4"))
    with pytest.raises(SystemExit):
        audit_command.verify(_args(key_conn_id=[hmac_key]))
    assert "first bad sequence number 4: truncated" in capsys.readouterr().out


def test_ed25519_key_from_a_connection_signs_and_its_public_key_verifies(
    trail: IntegrityStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    monkeypatch.setenv("AIRFLOW_CONN_SIGNER", json.dumps({"conn_type": "generic", "password": pem.decode()}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_CHECKER",
        json.dumps({"conn_type": "generic", "password": public.decode(), "extra": {"key_id": "auditor-2026"}}),
    )
    with pytest.raises(SystemExit):  # a public key cannot sign
        audit_command.checkpoint(_args(key_conn_id=["checker"]))
    assert "cannot sign" in capsys.readouterr().err
    audit_command.checkpoint(_args(key_conn_id=["signer"]))
    assert "ed25519" in capsys.readouterr().out
    # The id in the connection's extra renames the key, so the checkpoint's signer is then unknown.
    with pytest.raises(SystemExit):
        audit_command.verify(_args(key_conn_id=["checker"]))
    assert "checkpoint mismatch" in capsys.readouterr().out
    monkeypatch.setenv("AIRFLOW_CONN_CHECKER", json.dumps({"conn_type": "generic", "password": public.decode()}))
    audit_command.verify(_args(key_conn_id=["checker"]))
    assert "signatures verified" in capsys.readouterr().out


def test_checkpoint_needs_a_key(trail: IntegrityStore, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (_args(), _args(key_conn_id=["no_such_key"])):
        with pytest.raises(SystemExit) as exited:
            audit_command.checkpoint(args)
        assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "--key-conn-id" in err and "'no_such_key' is not defined" in err


@pytest.mark.requirement("alcoa.available", "part11.11.10b")
def test_export_writes_the_file_with_its_verification(
    trail: IntegrityStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "claim-1.csv"
    audit_command.export(_args(format="csv", business_key="claim-1", output=str(target)))
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# airflow-integrity audit export: chain VERIFIED: 5 events")
    rows = list(csv.DictReader(lines[1:-1]))
    assert [r["seq"] for r in rows] == ["2", "4"] and {r["business_key"] for r in rows} == {"claim-1"}
    assert "Exported 2 events" in capsys.readouterr().err


def test_export_to_stdout_exits_1_when_the_chain_is_broken(
    trail: IntegrityStore, capsys: pytest.CaptureFixture[str]
) -> None:
    with tampering(trail) as conn:
        conn.execute(text(f"DELETE FROM {EVENT} WHERE seq = 2"))
    with pytest.raises(SystemExit) as exited:
        audit_command.export(_args())
    assert exited.value.code == 1
    captured = capsys.readouterr()
    header = json.loads(captured.out.splitlines()[0])
    assert header["verified"] is False and header["verification"]["first_bad_seq"] == 2
    assert "NOT verified" in captured.err


def test_unreachable_store_is_reported_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", "postgresql://u:pw@127.0.0.1:9/integrity")
    with pytest.raises(SystemExit) as exited:
        audit_command.verify(_args())
    assert exited.value.code == 1
    assert "127.0.0.1:9" in capsys.readouterr().err


@pytest.mark.unit
def test_audit_commands_are_defined_lazily() -> None:
    assert [c.name for c in audit_command.AUDIT_COMMANDS] == [
        "verify",
        "export",
        "archive",
        "verify-archive",
        "checkpoint",
        "reconcile",
        "drain",
    ]
    flags = {a.flags[0] for c in audit_command.AUDIT_COMMANDS for a in c.args}
    assert {"--key-conn-id", "--format", "--business-key", "--since", "--until", "--output"} <= flags


@pytest.mark.requirement("part11.11.10a")
def test_real_airflow_cli_verify_exits_0_then_1_after_tampering(tmp_path: Path) -> None:
    import os
    import subprocess

    url = f"sqlite:///{tmp_path / 'integrity.db'}"
    store = IntegrityStore(StoreLocation.from_url(url))
    store.migrate()
    AuditLog(store).append_many([AuditEvent("claim.step", "worker", business_key="claim-42") for _ in range(3)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update({"AIRFLOW_HOME": str(tmp_path), "AIRFLOW_CONN_INTEGRITY_DEFAULT": url})
    command = [*integrity_cli(), "audit", "verify"]
    intact = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert intact.returncode == 0, intact.stderr
    assert "3 events verified" in intact.stdout and AuditLog(store).head().hash in intact.stdout
    with tampering(store) as conn:
        conn.execute(text(f"UPDATE {EVENT} SET body = replace(body, 'claim-42', 'claim-43') WHERE seq = 2"))
    broken = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert broken.returncode == 1
    assert "first bad sequence number 2" in broken.stdout + broken.stderr


def test_verify_reports_events_not_chained_yet_and_export_chains_them_first(
    trail: IntegrityStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if trail.backend == "sqlite":
        pytest.skip("SQLite chains every event as it is recorded")
    log = AuditLog(trail)
    log.record(AuditEvent("claim.received", "worker", business_key="claim-7"), chain_within=None)
    late = log.record(AuditEvent("claim.paid", "worker", business_key="claim-7"), batch=1000, chain_within=None)
    if late.chained:  # more than a second passed between the two: this one chained the first
        pytest.skip("the machine was too slow to leave an event pending")
    audit_command.verify(_args())
    captured = capsys.readouterr()
    assert captured.out.startswith("OK: 6 events verified")
    assert "1 recorded event(s) not chained yet" in captured.out
    assert "not chained yet, so this verification does not cover them" in captured.err
    output = tmp_path / "claim-7.jsonl"
    audit_command.export(_args(business_key="claim-7", output=str(output)))
    _, *events, _ = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(e["event_type"], e["seq"]) for e in events] == [("claim.received", 6), ("claim.paid", 7)]
    audit_command.verify(_args())
    assert capsys.readouterr().out.startswith("OK: 7 events verified")


def test_verify_changes_nothing_not_even_an_old_schema(
    store_conn_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_integrity.store import migrate

    store = IntegrityStore(StoreLocation.from_url(store_conn_env))
    migrate.upgrade(store.engine, revision="a1")
    with pytest.raises(SystemExit) as exited:
        audit_command.verify(_args())
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "at schema revision a1" in err and "airflow integrity db migrate" in err
    with store.read() as conn:
        assert migrate.current_revision(conn) == "a1"  # verification migrated nothing
