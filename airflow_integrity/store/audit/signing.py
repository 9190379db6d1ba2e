"""Signed checkpoints of the audit chain: (sequence number, head hash) signed with a key; the keys, the signed
message and the stored checkpoints. Signing a new one (which verifies the chain first) is in ``checkpoints``.

Someone who can write to the database can rewrite the whole chain consistently, since the hash
algorithm is public. They cannot re-sign the checkpoints without the key, so the head hash at a
checkpoint's sequence number no longer matches what was signed. HMAC-SHA256 (a shared secret) and
Ed25519 (verification needs only the public key) are supported. The caller supplies the key
material; this module reads no configuration.

The signed message is UTF-8 text::

    airflow-integrity audit checkpoint v1
    store_id=<uuid of the store>
    seq=<decimal>
    head_hash=<64 hex digits>
    created_at=<YYYY-MM-DDTHH:MM:SS.ffffffZ>
    key_id=<key id>
    algorithm=<hmac-sha256 | ed25519>

each line ending in ``\\n``; the signature is stored in lowercase hex.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from airflow_integrity.store.audit.schema import CHECKPOINT
from airflow_integrity.store.errors import StoreError

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

HMAC_SHA256 = "hmac-sha256"
ED25519 = "ed25519"
MIN_HMAC_SECRET_BYTES = 16


class CheckpointKeyError(StoreError, ValueError):
    """Key material for signing or verifying checkpoints is missing, malformed or of the wrong kind."""


@dataclass(frozen=True)
class CheckpointKey:
    """A key that signs and/or verifies checkpoints. Build one with the class methods.

    Args:
        algorithm: ``"hmac-sha256"`` or ``"ed25519"``.
        key_id: Names the key in each checkpoint, so verification picks the right one after a rotation.
    """

    algorithm: str
    key_id: str
    _secret: bytes | None = field(default=None, repr=False)
    _private: Any = field(default=None, repr=False)
    _public: Any = field(default=None, repr=False)

    @classmethod
    def hmac_sha256(cls, secret: bytes | str, *, key_id: str | None = None) -> CheckpointKey:
        """An HMAC-SHA256 key from a shared secret (at least 16 bytes; use 32 random bytes)."""
        raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if len(raw) < MIN_HMAC_SECRET_BYTES:
            raise CheckpointKeyError(
                f"The HMAC checkpoint secret is {len(raw)} bytes long; use at least {MIN_HMAC_SECRET_BYTES} "
                "(for example 32 random bytes: python -c 'import secrets; print(secrets.token_hex(32))')."
            )
        derived = hashlib.sha256(b"airflow-integrity checkpoint key id\n" + raw).hexdigest()[:16]
        return cls(HMAC_SHA256, key_id or f"hmac-{derived}", _secret=raw)

    @classmethod
    def ed25519(
        cls, pem: bytes | str, *, password: bytes | None = None, key_id: str | None = None
    ) -> CheckpointKey:
        """An Ed25519 key from PEM: a private key signs and verifies, a public key only verifies."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        data = pem.encode("ascii") if isinstance(pem, str) else bytes(pem)
        private = None
        try:
            if b"PRIVATE KEY" in data:
                private = serialization.load_pem_private_key(data, password=password)
                public = private.public_key()
            else:
                public = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise CheckpointKeyError(f"The checkpoint key is not a readable PEM key: {exc}") from None
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise CheckpointKeyError(
                f"The checkpoint key is a {type(public).__name__}, not an Ed25519 key. Create one with "
                "`openssl genpkey -algorithm ed25519`."
            )
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        derived = hashlib.sha256(raw).hexdigest()[:16]
        return cls(ED25519, key_id or f"ed25519-{derived}", _private=private, _public=public)

    @classmethod
    def from_secret(cls, secret: str, *, key_id: str | None = None) -> CheckpointKey:
        """Read key material kept as text (an Airflow connection's password): PEM means Ed25519, else HMAC."""
        if not secret:
            raise CheckpointKeyError(
                "The checkpoint key is empty: put the HMAC secret or an Ed25519 PEM key in it."
            )
        if "-----BEGIN" in secret:
            return cls.ed25519(secret.strip(), key_id=key_id)
        return cls.hmac_sha256(secret, key_id=key_id)

    @property
    def can_sign(self) -> bool:
        """Whether this key can create checkpoints (an Ed25519 public key only verifies)."""
        return self._secret is not None or self._private is not None

    def sign(self, message: bytes) -> str:
        """Sign ``message``; return the signature in hex."""
        if self._secret is not None:
            return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
        if self._private is None:
            raise CheckpointKeyError(
                f"Checkpoint key {self.key_id} is an Ed25519 public key: it verifies checkpoints but cannot "
                "sign them. Pass the private key to create checkpoints."
            )
        return str(self._private.sign(message).hex())

    def verify(self, message: bytes, signature: object) -> bool:
        """Whether ``signature`` (hex) is this key's signature of ``message``; anything that is not hex text
        (a forged or damaged row) simply does not verify."""
        if not isinstance(signature, str) or not signature.isascii():
            return False
        if self._secret is not None:
            expected = hmac.new(self._secret, message, hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected, signature.lower())
        from cryptography.exceptions import InvalidSignature

        try:
            self._public.verify(bytes.fromhex(signature), message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Checkpoint:
    """A stored checkpoint: the chain's head at ``seq`` was ``head_hash``, signed by ``key_id``."""

    id: int
    seq: int
    head_hash: str
    created_at: str
    key_id: str
    algorithm: str
    signature: str

    def message(self, store_id: str) -> bytes:
        """The bytes the signature covers (see the module docstring)."""
        return signed_message(store_id, self.seq, self.head_hash, self.created_at, self.key_id, self.algorithm)

    def signed_by(self, key: CheckpointKey, store_id: str) -> bool:
        """Whether ``key`` (same id and algorithm) verifies this checkpoint's signature for store ``store_id``."""
        return (
            self.key_id == key.key_id
            and self.algorithm == key.algorithm
            and key.verify(self.message(store_id), self.signature)
        )


def signed_message(store_id: str, seq: int, head_hash: str, created_at: str, key_id: str, algorithm: str) -> bytes:
    """The canonical message a checkpoint signature covers."""
    return (
        "airflow-integrity audit checkpoint v1\n"
        f"store_id={store_id}\nseq={seq}\nhead_hash={head_hash}\ncreated_at={created_at}\n"
        f"key_id={key_id}\nalgorithm={algorithm}\n"
    ).encode()


def store_id(conn: Connection) -> str:
    """The id of the store (checkpoints are bound to it, so they cannot be copied to another store)."""
    return str(conn.execute(text("SELECT store_id FROM integrity_store_info WHERE id = 1")).scalar_one())


def list_checkpoints(conn: Connection) -> list[Checkpoint]:
    """Every checkpoint, in order of sequence number then creation."""
    rows = conn.execute(
        text(
            f"SELECT id, seq, head_hash, created_at, key_id, algorithm, signature FROM {CHECKPOINT} "
            "ORDER BY seq, id"
        )
    ).all()
    return [Checkpoint(*row) for row in rows]


def newest_checkpoint(conn: Connection) -> Checkpoint | None:
    """The checkpoint row at the highest sequence number (the newest among them), or ``None``."""
    row = conn.execute(
        text(
            f"SELECT id, seq, head_hash, created_at, key_id, algorithm, signature FROM {CHECKPOINT} "
            "ORDER BY seq DESC, id DESC LIMIT 1"
        )
    ).first()
    return None if row is None else Checkpoint(*row)


def page_checkpoints(conn: Connection, *, before: int | None = None, limit: int = 100) -> list[Checkpoint]:
    """Checkpoints newest first (by row id, which grows with each one), below the row id ``before``."""
    where = "WHERE id < :before" if before is not None else ""
    rows = conn.execute(
        text(
            f"SELECT id, seq, head_hash, created_at, key_id, algorithm, signature FROM {CHECKPOINT} {where} "
            f"ORDER BY id DESC LIMIT {max(1, min(int(limit), 500))}"
        ),
        {"before": before},
    ).all()
    return [Checkpoint(*row) for row in rows]
