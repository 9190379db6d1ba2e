"""``airflow integrity audit archive`` and ``verify-archive``: a copy of the trail up to a signed checkpoint that
proves itself complete and unaltered without the store; the trail itself is never deleted."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import pytest

from airflow_integrity.cli import audit_command
from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.archive import check_archive
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.checkpoints import create_checkpoint
from airflow_integrity.store.audit.event import GENESIS_HASH, AuditEvent, chain_hash
from airflow_integrity.store.audit.signing import CheckpointKey
from airflow_integrity.store.audit.verify import verify
from tests.airflow_versions import integrity_cli

pytestmark = pytest.mark.integration
SECRET = "archive-test-hmac-secret-0123456789"
KEY = CheckpointKey.hmac_sha256(SECRET)


@pytest.fixture
def signed_trail(store_conn_env: str, monkeypatch: pytest.MonkeyPatch) -> IntegrityStore:
    """Five events under a checkpoint signed with ``KEY``, then two more not covered by any checkpoint yet."""
    monkeypatch.setenv("AIRFLOW_CONN_AUDIT_KEY", json.dumps({"conn_type": "generic", "password": SECRET}))
    store = IntegrityStore(StoreLocation.from_url(store_conn_env))
    store.migrate()
    log = AuditLog(store)
    log.append_many(
        [AuditEvent("claim.step", "worker", business_key=f"claim-{i}", details={"i": i}) for i in range(5)]
    )
    create_checkpoint(store, KEY)
    log.append_many([AuditEvent("claim.step", "worker", business_key="claim-late") for _ in range(2)])
    return store


def _archive(path: Path) -> None:
    audit_command.archive(argparse.Namespace(conn_id=None, key_conn_id=["audit_key"], output=str(path)))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


@pytest.mark.requirement("part11.11.10c", "annex11.7", "alcoa.enduring")
def test_an_archive_holds_every_event_up_to_the_checkpoint_and_verifies_on_its_own(
    signed_trail: IntegrityStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "trail-2026.jsonl"
    _archive(archive)
    assert "Archived 5 events" in capsys.readouterr().out
    header, *events, end = _lines(archive)
    assert header["checkpoint"]["seq"] == 5 and header["events"] == 5 and end == {"record": "end", "events": 5}
    assert [event["seq"] for event in events] == [1, 2, 3, 4, 5]
    with signed_trail.read() as conn:
        stored = conn.exec_driver_sql("SELECT seq, body, hash FROM integrity_audit_event ORDER BY seq").all()
    assert [(e["seq"], e["body"], e["hash"]) for e in events] == [tuple(row) for row in stored[:5]]

    # Checked without the store: only the file and the key.
    with archive.open(encoding="utf-8") as lines:
        result = check_archive(lines, KEY)
    assert result.ok and (result.events, result.through_seq) == (5, 5), result
    # Archiving deleted nothing: the trail has all seven events and still verifies.
    assert verify(signed_trail).count == 7 and verify(signed_trail).ok
    assert not archive.with_name(archive.name + ".partial").exists()


def test_an_altered_shortened_reordered_or_rewritten_archive_is_caught_at_its_first_bad_line(
    signed_trail: IntegrityStore, tmp_path: Path
) -> None:
    archive = tmp_path / "archive.jsonl"
    _archive(archive)
    header, *events, end = _lines(archive)

    def check(records: list[dict], key: CheckpointKey = KEY) -> tuple[int | None, str]:
        path = tmp_path / "changed.jsonl"
        _write(path, records)
        with path.open(encoding="utf-8") as lines:
            result = check_archive(lines, key)
        assert not result.ok
        return result.line, str(result.reason)

    edited = [dict(e) for e in events]
    edited[2]["body"] = edited[2]["body"].replace("claim-2", "claim-9")
    assert check([header, *edited, end]) == (4, "event 3 was altered (its hash does not match its body)")

    assert check([header, *events[:2], *events[3:], end])[0] == 4  # event 3 removed
    assert "missing or moved" in check([header, *events[:2], *events[3:], end])[1]
    assert check([header, events[1], events[0], *events[2:], end])[0] == 2
    assert "cut short" in check([header, *events])[1]

    # Rewritten consistently, every hash recomputed: the last no longer matches the signed checkpoint.
    prev, rewritten = GENESIS_HASH, []
    for event in edited:
        hash_ = chain_hash(prev, event["seq"], event["body"].encode())
        rewritten.append({**event, "prev_hash": prev, "hash": hash_})
        prev = hash_
    assert "not the checkpoint's head hash" in check([header, *rewritten, end])[1]

    # A checkpoint moved to vouch for the rewrite no longer carries a valid signature.
    forged = {**header, "checkpoint": {**header["checkpoint"], "head_hash": prev}}
    assert check([forged, *rewritten, end]) == (1, "the checkpoint's signature does not verify with the key")
    other = CheckpointKey.hmac_sha256("another-secret-of-sixteen-bytes-or-more")
    assert check([header, *events, end], other)[1] == "the checkpoint's signature does not verify with the key"

    # What a reader and the check could read differently is refused: a key twice, extra fields, a wrong count.
    path = tmp_path / "twice.jsonl"
    lines = archive.read_text(encoding="utf-8").splitlines()
    forged_body = json.dumps(events[2]["body"].replace("claim-2", "claim-9"))
    lines[3] = lines[3].replace('"body": ', f'"body": {forged_body}, "body": ', 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with path.open(encoding="utf-8") as twice:
        result = check_archive(twice, KEY)
    assert (result.ok, result.line) == (False, 4) and "a key appears twice" in str(result.reason)
    assert "other fields" in check([header, *events[:1], {**events[1], "note": "x"}, *events[2:], end])[1]
    assert "event count" in check([{**header, "events": 999}, *events, end])[1]
    blank = tmp_path / "blank.jsonl"
    blank.write_text(archive.read_text(encoding="utf-8").replace("\n", "\n\n", 1), encoding="utf-8")
    with blank.open(encoding="utf-8") as lines_with_a_gap:
        assert check_archive(lines_with_a_gap, KEY).line == 2


def test_no_archive_without_a_signed_checkpoint_and_never_over_an_existing_file(
    store_conn_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AUDIT_KEY", json.dumps({"conn_type": "generic", "password": SECRET}))
    store = IntegrityStore(StoreLocation.from_url(store_conn_env))
    store.migrate()
    AuditLog(store).append(AuditEvent("claim.step", "worker"))
    with pytest.raises(SystemExit):
        _archive(tmp_path / "a.jsonl")
    assert "no checkpoint signed by the key exists yet" in capsys.readouterr().err
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "a.jsonl.partial").exists()

    create_checkpoint(store, KEY)
    existing = tmp_path / "kept.jsonl"
    existing.write_text("an earlier archive\n")
    with pytest.raises(SystemExit):
        _archive(existing)
    assert "never overwritten" in capsys.readouterr().err
    assert existing.read_text() == "an earlier archive\n"


def test_the_real_airflow_cli_archives_and_checks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'integrity.db'}"
    store = IntegrityStore(StoreLocation.from_url(url))
    store.migrate()
    AuditLog(store).append_many([AuditEvent("claim.step", "worker", business_key="claim-42") for _ in range(3)])
    create_checkpoint(store, KEY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW_CONN_INTEGRITY_DEFAULT": url,
            "AIRFLOW_CONN_AUDIT_KEY": json.dumps({"conn_type": "generic", "password": SECRET}),
        }
    )
    archive = tmp_path / "archive.jsonl"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*integrity_cli(), "audit", *args], env=env, capture_output=True, text=True, timeout=180
        )

    made = cli("archive", "--key-conn-id", "audit_key", "--output", str(archive))
    assert made.returncode == 0, made.stderr
    checked = cli("verify-archive", str(archive), "--key-conn-id", "audit_key")
    assert checked.returncode == 0, checked.stderr
    assert "archive VERIFIED: 3 events, complete up to the checkpoint at seq 3 (signed " in checked.stdout
    assert "by hmac-sha256 key" in checked.stdout
    archive.write_text(archive.read_text().replace("claim-42", "claim-43", 1))
    broken = cli("verify-archive", str(archive), "--key-conn-id", "audit_key")
    assert broken.returncode == 1 and "line 2: event 1 was altered" in broken.stdout
    archive.write_bytes(b"\xff\xfe not text")
    garbage = cli("verify-archive", str(archive), "--key-conn-id", "audit_key")
    assert garbage.returncode == 1 and "not UTF-8 text" in garbage.stdout, garbage.stderr

    # A partial file someone else left is neither used nor removed.
    left = tmp_path / "again.jsonl.partial"
    left.write_text("someone else's\n")
    again = cli("archive", "--key-conn-id", "audit_key", "--output", str(tmp_path / "again.jsonl"))
    assert again.returncode == 1 and "not touched" in again.stderr
    assert left.read_text() == "someone else's\n"
