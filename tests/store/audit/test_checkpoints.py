"""Signed checkpoints: HMAC-SHA256 and Ed25519 keys, verification, and refusal to sign a broken chain."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.checkpoints import create_checkpoint
from airflow_integrity.store.audit.event import AuditChainError, AuditEvent
from airflow_integrity.store.audit.schema import EVENT
from airflow_integrity.store.audit.signing import (
    ED25519,
    HMAC_SHA256,
    CheckpointKey,
    CheckpointKeyError,
    signed_message,
)
from airflow_integrity.store.audit.verify import CHECKPOINT_MISMATCH, HASH_MISMATCH, verify
from tests.store.audit.test_tamper import tampering


def _pem(private: ed25519.Ed25519PrivateKey) -> tuple[str, str]:
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@pytest.mark.unit
def test_hmac_key_signs_and_verifies_and_rejects_other_messages() -> None:
    key = CheckpointKey.hmac_sha256("a shared secret of some length")
    signature = key.sign(b"message")
    assert key.algorithm == HMAC_SHA256 and key.key_id.startswith("hmac-")
    assert key.verify(b"message", signature)
    assert not key.verify(b"massage", signature)
    assert not CheckpointKey.hmac_sha256("another secret of some length").verify(b"message", signature)
    assert key.key_id == CheckpointKey.hmac_sha256("a shared secret of some length").key_id


@pytest.mark.unit
def test_ed25519_public_key_verifies_what_the_private_key_signed_but_cannot_sign() -> None:
    private_pem, public_pem = _pem(ed25519.Ed25519PrivateKey.generate())
    signer = CheckpointKey.from_secret(private_pem)
    checker = CheckpointKey.from_secret(public_pem)
    assert signer.algorithm == checker.algorithm == ED25519
    assert signer.key_id == checker.key_id
    signature = signer.sign(b"message")
    assert checker.verify(b"message", signature) and not checker.verify(b"other", signature)
    assert not checker.can_sign
    with pytest.raises(CheckpointKeyError, match="public key"):
        checker.sign(b"message")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("short", "at least 16"),
        ("", "empty"),
        ("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----", "not a readable PEM"),
    ],
)
def test_unusable_key_material_is_explained(secret: str, problem: str) -> None:
    with pytest.raises(CheckpointKeyError, match=problem):
        CheckpointKey.from_secret(secret)


@pytest.mark.unit
def test_a_pem_key_that_is_not_ed25519_is_refused_naming_its_type() -> None:
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=1024)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(CheckpointKeyError, match=r"RSA.*not an Ed25519"):
        CheckpointKey.from_secret(pem)


@pytest.mark.requirement("annex11.7")
@pytest.mark.integration
@pytest.mark.parametrize("kind", ["hmac", "ed25519"])
def test_checkpoint_signs_the_head_and_verifies_with_the_key(store: IntegrityStore, kind: str) -> None:
    private_pem, public_pem = _pem(ed25519.Ed25519PrivateKey.generate())
    signer = CheckpointKey.hmac_sha256(b"s" * 32) if kind == "hmac" else CheckpointKey.ed25519(private_pem)
    checker = signer if kind == "hmac" else CheckpointKey.ed25519(public_pem)
    records = AuditLog(store).append_many([AuditEvent("e", "a", details={"i": i}) for i in range(5)])
    checkpoint = create_checkpoint(store, signer)
    assert (checkpoint.seq, checkpoint.head_hash, checkpoint.key_id) == (5, records[-1].hash, signer.key_id)
    with store.read() as conn:
        identity = conn.execute(text("SELECT store_id FROM integrity_store_info")).scalar_one()
    message = signed_message(identity, 5, records[-1].hash, checkpoint.created_at, signer.key_id, signer.algorithm)
    assert checker.verify(message, checkpoint.signature)
    result = verify(store, key=checker)
    assert (result.ok, result.checkpoints, result.signatures_checked) == (True, 1, True)

    stranger = CheckpointKey.hmac_sha256(b"t" * 32)
    wrong = verify(store, key=stranger)
    assert (wrong.ok, wrong.reason, wrong.first_bad_seq) == (False, CHECKPOINT_MISMATCH, 1)
    assert "not given" in (wrong.detail or "")


@pytest.mark.integration
def test_from_checkpoint_verifies_only_what_came_after(store: IntegrityStore) -> None:
    key = CheckpointKey.hmac_sha256(b"s" * 32)
    log = AuditLog(store)
    log.append_many([AuditEvent("e", "a", details={"i": i}) for i in range(6)])
    create_checkpoint(store, key)
    log.append_many([AuditEvent("e", "a", details={"i": i}) for i in range(6, 9)])
    incremental = verify(store, key=key, from_checkpoint=True)
    assert (incremental.ok, incremental.verified_from, incremental.count, incremental.head_seq) == (True, 7, 3, 9)
    edit = text(f"UPDATE {EVENT} SET body = replace(body, :old, :new) WHERE seq = :seq")
    # An edit before the checkpoint is caught by a full pass (the incremental one starts after it).
    with tampering(store) as conn:
        conn.execute(edit, {"old": '"i":2', "new": '"i":20', "seq": 3})
    assert (verify(store, key=key).first_bad_seq, verify(store, key=key).reason) == (3, HASH_MISMATCH)
    # The incremental pass trusts the signed checkpoint and does not look back (by design).
    assert verify(store, key=key, from_checkpoint=True).ok
    # An edit after it is caught by the incremental pass.
    with tampering(store) as conn:
        conn.execute(edit, {"old": '"i":20', "new": '"i":2', "seq": 3})
        conn.execute(edit, {"old": '"i":7', "new": '"i":70', "seq": 8})
    incremental = verify(store, key=key, from_checkpoint=True)
    assert (incremental.verified_from, incremental.first_bad_seq, incremental.reason) == (7, 8, HASH_MISMATCH)


@pytest.mark.integration
def test_a_broken_chain_is_not_signed(store: IntegrityStore) -> None:
    AuditLog(store).append_many([AuditEvent("e", "a", details={"i": i}) for i in range(3)])
    with tampering(store) as conn:
        conn.execute(text(f"DELETE FROM {EVENT} WHERE seq = 2"))
    with pytest.raises(AuditChainError, match="first bad seq 2: gap"):
        create_checkpoint(store, CheckpointKey.hmac_sha256(b"s" * 32))
    with store.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM integrity_audit_checkpoint")).scalar_one() == 0
