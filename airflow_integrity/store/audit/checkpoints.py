"""Signing a checkpoint of the audit chain: chain what waits, verify, then sign the head (see ``signing`` for the
keys and the signed message)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import text

from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import AuditChainError, format_timestamp
from airflow_integrity.store.audit.schema import CHECKPOINT, EVENT
from airflow_integrity.store.audit.signing import Checkpoint, CheckpointKey, signed_message, store_id
from airflow_integrity.store.audit.verify import verify

if TYPE_CHECKING:
    from airflow_integrity.store.store import IntegrityStore

log = logging.getLogger(__name__)


def create_checkpoint(store: IntegrityStore, key: CheckpointKey) -> Checkpoint:
    """Chain waiting events, verify the chain since the last checkpoint this key can check, then sign its
    head and store that.

    Raises:
        AuditChainError: The chain does not verify; signing it would vouch for a tampered log.
        CheckpointKeyError: The key cannot sign.
    """
    if not key.can_sign:
        key.sign(b"")  # raises the explanatory error
    AuditLog(store).chain_pending()
    result = verify(store, key=key, from_checkpoint=True, skip_unverifiable_checkpoints=True)
    for warning in result.warnings:
        log.warning("Signing an audit checkpoint: %s", warning)
    if not result.ok:
        raise AuditChainError(
            f"Not signing a checkpoint: the audit chain does not verify ({result.summary()}). Investigate with "
            "`airflow integrity audit verify`."
        )
    created_at = format_timestamp(datetime.now(UTC))
    with store.begin() as conn:
        identity = store_id(conn)
        head = conn.execute(text(f"SELECT hash FROM {EVENT} WHERE seq = :seq"), {"seq": result.head_seq}).first()
        head_hash = head[0] if head else result.head_hash
        if head_hash != result.head_hash:
            raise AuditChainError(f"The hash of event {result.head_seq} changed while it was being verified.")
        signature = key.sign(
            signed_message(identity, result.head_seq, head_hash, created_at, key.key_id, key.algorithm)
        )
        values = {
            "seq": result.head_seq,
            "head_hash": head_hash,
            "created_at": created_at,
            "key_id": key.key_id,
            "algorithm": key.algorithm,
            "signature": signature,
        }
        insert = (
            f"INSERT INTO {CHECKPOINT} (seq, head_hash, created_at, key_id, algorithm, signature) "
            "VALUES (:seq, :head_hash, :created_at, :key_id, :algorithm, :signature)"
        )
        if store.backend == "postgresql":
            row = conn.execute(text(insert + " RETURNING id"), values).scalar_one()
        else:
            row = conn.execute(text(insert), values).lastrowid
    return Checkpoint(row, result.head_seq, head_hash, created_at, key.key_id, key.algorithm, signature)
