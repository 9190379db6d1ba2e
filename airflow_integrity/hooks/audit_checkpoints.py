"""Signed checkpoints of the audit trail: the key from an Airflow connection, on demand and periodically.

The key connection's password holds either the HMAC-SHA256 secret (any text of at least 16 bytes) or an
Ed25519 key in PEM form (a private key signs and verifies; a public key only verifies). An optional
``key_id`` in the connection's extra names the key; otherwise an id derived from the key is used.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from airflow_integrity.settings import load_settings

if TYPE_CHECKING:
    from airflow_integrity.store import IntegrityStore
    from airflow_integrity.store.audit.signing import Checkpoint, CheckpointKey

log = logging.getLogger(__name__)
# How far in the future (by this host's clock) a checkpoint's signing time may lie and still count.
CLOCK_SKEW = timedelta(minutes=5)


def load_checkpoint_key(conn_id: str) -> CheckpointKey:
    """The checkpoint key held by the Airflow connection ``conn_id``.

    Raises:
        CheckpointKeyError: The connection is missing, has no password, or does not hold a usable key.
    """
    from airflow.sdk import BaseHook

    from airflow_integrity.compat import AirflowNotFoundException
    from airflow_integrity.store.audit.signing import CheckpointKey, CheckpointKeyError

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise CheckpointKeyError(
            f"The checkpoint key connection {conn_id!r} is not defined. Create it with the key in its password "
            f"(Admin > Connections, or AIRFLOW_CONN_{conn_id.upper()})."
        ) from None
    if not conn.password:
        raise CheckpointKeyError(
            f"The checkpoint key connection {conn_id!r} has no password: put the HMAC secret or the Ed25519 PEM "
            "key in it."
        )
    key_id = (conn.extra_dejson or {}).get("key_id")
    try:
        return CheckpointKey.from_secret(conn.password, key_id=key_id)
    except CheckpointKeyError as exc:
        raise CheckpointKeyError(f"Connection {conn_id!r}: {exc}") from None


def latest_checkpoint_time(
    store: IntegrityStore, key: CheckpointKey, *, now: datetime | None = None
) -> datetime | None:
    """When the newest checkpoint that ``key`` verifies was signed (UTC), or ``None`` when there is none.

    A checkpoint row only counts if its signature verifies with the key: anyone who can insert a row could
    otherwise date one far in the future and so switch periodic signing off. One dated more than
    :data:`CLOCK_SKEW` after ``now`` does not count either.
    """
    from airflow_integrity.store.audit.signing import list_checkpoints, store_id

    now = now or datetime.now(UTC)
    with store.read() as conn:
        identity = store_id(conn)
        checkpoints = list_checkpoints(conn)
    newest = None
    for cp in checkpoints:
        if cp.key_id != key.key_id or cp.algorithm != key.algorithm:
            continue
        if not cp.signed_by(key, identity):
            log.warning(
                "Audit checkpoint %s (seq %s) does not verify with key %s: ignored", cp.id, cp.seq, key.key_id
            )
            continue
        try:
            signed = datetime.fromisoformat(cp.created_at.replace("Z", "+00:00"))
        except ValueError:
            continue
        signed = signed if signed.tzinfo else signed.replace(tzinfo=UTC)
        if signed - now > CLOCK_SKEW:
            continue
        newest = signed if newest is None else max(newest, signed)
    return newest


def checkpoint_if_due(store: IntegrityStore, *, now: datetime | None = None) -> Checkpoint | None:
    """Sign the trail's head when ``[integrity] checkpoint_key_conn_id`` is set and the newest checkpoint is
    older than ``[integrity] checkpoint_interval`` seconds; return the new checkpoint, else ``None``.

    Several schedulers may both find a checkpoint due and both sign: two checkpoints of nearly the same
    head are harmless, a missed one is not.
    """
    from airflow_integrity.store.audit.checkpoints import create_checkpoint

    settings = load_settings()
    if not settings.checkpoint_key_conn_id:
        return None
    now = now or datetime.now(UTC)
    key = load_checkpoint_key(settings.checkpoint_key_conn_id)
    newest = latest_checkpoint_time(store, key, now=now)
    if newest is not None and now - newest < timedelta(seconds=settings.checkpoint_interval):
        return None
    made = create_checkpoint(store, key)
    log.info("Signed audit checkpoint %s at seq %s (head hash %s).", made.id, made.seq, made.head_hash)
    return made
