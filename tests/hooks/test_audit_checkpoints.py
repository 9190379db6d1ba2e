"""Periodic signed checkpoints: due by the configured interval, signed with the key from a connection."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from airflow_integrity.hooks.audit_checkpoints import checkpoint_if_due, load_checkpoint_key
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import AuditEvent
from airflow_integrity.store.audit.signing import CheckpointKey, CheckpointKeyError
from airflow_integrity.store.audit.verify import verify

pytestmark = pytest.mark.integration
SECRET = "periodic-checkpoint-secret-0123456789"


@pytest.fixture
def signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AUDIT_KEY", json.dumps({"conn_type": "generic", "password": SECRET}))
    monkeypatch.setenv("AIRFLOW__INTEGRITY__CHECKPOINT_KEY_CONN_ID", "audit_key")
    monkeypatch.setenv("AIRFLOW__INTEGRITY__CHECKPOINT_INTERVAL", "600")


def test_a_checkpoint_is_signed_when_due_and_not_before(store, signing_key) -> None:
    log = AuditLog(store)
    log.append(AuditEvent("claim.received", "worker@h", business_key="claim-1"))
    first = checkpoint_if_due(store)
    assert first is not None and first.seq == 1
    log.append(AuditEvent("claim.paid", "worker@h", business_key="claim-1"))
    assert checkpoint_if_due(store) is None  # the newest checkpoint is younger than the interval
    later = datetime.now(UTC) + timedelta(seconds=601)
    second = checkpoint_if_due(store, now=later)
    assert second is not None and second.seq == 2
    result = verify(store, key=CheckpointKey.hmac_sha256(SECRET))
    assert result.ok and result.signatures_checked and result.checkpoints == 2, result.summary()


def test_no_key_configured_means_no_periodic_checkpoint(store, monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW__INTEGRITY__CHECKPOINT_KEY_CONN_ID", raising=False)
    AuditLog(store).append(AuditEvent("claim.received", "worker@h"))
    assert checkpoint_if_due(store) is None


def test_a_missing_key_connection_names_the_connection_and_the_fix(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_KEY", raising=False)
    with pytest.raises(CheckpointKeyError, match=r"'no_such_key' is not defined.*AIRFLOW_CONN_NO_SUCH_KEY"):
        load_checkpoint_key("no_such_key")
