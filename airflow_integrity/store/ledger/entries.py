"""What the idempotency ledger returns and raises: entries, history, outcomes and errors.

Outcomes carry everything a caller needs to act on the decision and to record it as an audit event
(``event`` and ``audit_details()``); audit details hold fingerprints of results, never the results.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any

from airflow_integrity.store.errors import StoreError


class LedgerError(StoreError):
    """Base class of idempotency-ledger errors."""


class LedgerInputError(LedgerError, ValueError):
    """A key, fingerprint, holder, result or release argument cannot be accepted."""


class InvalidKeyError(LedgerInputError):
    """An idempotency key (or namespace) is empty, too long or not a string."""


class ResultNotSerializableError(LedgerInputError, TypeError):
    """A result cannot be stored as JSON and so could not be replayed exactly."""


class ResultTooLargeError(LedgerInputError):
    """A result exceeds the largest size the ledger stores."""


class KeyNotFoundError(LedgerError, LookupError):
    """No ledger entry exists for a key."""


class ReleaseRefusedError(LedgerError):
    """A key cannot be released in its current state (held by a live holder, or already released)."""


class ResultCorruptedError(LedgerError):
    """A stored result no longer matches the SHA-256 recorded when it was stored."""


class State(str, enum.Enum):
    """The state of a ledger entry."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    RELEASED = "released"


class ClaimStatus(str, enum.Enum):
    """What a claim decided. ``CLAIMED`` and ``TAKEOVER`` mean the caller runs the work."""

    CLAIMED = "claimed"
    TAKEOVER = "takeover"
    REPLAY = "replay"
    BUSY = "busy"
    MISMATCH = "mismatch"
    FAILED_PERMANENTLY = "failed_permanently"


# Audit event name of each claim decision.
CLAIM_EVENTS = {
    ClaimStatus.CLAIMED: "claimed",
    ClaimStatus.TAKEOVER: "takeover",
    ClaimStatus.REPLAY: "replayed",
    ClaimStatus.BUSY: "conflict",
    ClaimStatus.MISMATCH: "fingerprint_mismatch",
    ClaimStatus.FAILED_PERMANENTLY: "failed_permanently",
}


@dataclass(frozen=True)
class LedgerEntry:
    """A snapshot of one key's ledger row. Times are UTC, from the database's clock."""

    namespace: str
    key: str
    fingerprint: str
    state: State
    retryable: bool | None
    holder: dict[str, Any]
    origin: dict[str, Any]
    previous_state: str | None
    previous_holder: dict[str, Any] | None
    fencing_token: int
    lease_seconds: float
    lease_expires_at: dt.datetime | None
    attempts: int
    result_size: int | None
    result_sha256: str | None
    result_by_reference: bool
    error: str | None
    last_event: str
    last_person: str | None
    last_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    completed_at: dt.datetime | None
    expires_at: dt.datetime | None
    result_json: str | None = field(default=None, repr=False, compare=False)
    result_ref: int | None = field(default=None, repr=False, compare=False)
    # The canonical form of the stored fingerprint (airflow_integrity.store.ledger.codec.inputs_digest).
    fingerprint_scheme: int = 2

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view without the result itself."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            if name in ("result_json", "result_ref"):
                continue
            value = getattr(self, name)
            if isinstance(value, dt.datetime):
                value = value.isoformat()
            elif isinstance(value, enum.Enum):
                value = value.value
            out[name] = value
        return out


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded event of a key: a transition, a replay, a refusal or a release."""

    seq: int
    event: str
    at: dt.datetime
    state: str | None
    previous_state: str | None
    fencing_token: int | None
    fingerprint: str | None
    holder: dict[str, Any] | None
    previous_holder: dict[str, Any] | None
    person: str | None
    reason: str | None
    error: str | None
    result_sha256: str | None
    result_size: int | None
    details: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["at"] = self.at.isoformat()
        return out


@dataclass(frozen=True)
class Lease:
    """The right to run one key's work, proven by its fencing token.

    Args:
        namespace: The key's namespace.
        key: The idempotency key.
        fencing_token: Grows with every new holder; pass it downstream so that systems which see a
            higher token can refuse this one.
        lease_seconds: How long the lease lasts without renewal.
        expires_at: When it lapses unless renewed (database clock).
    """

    namespace: str
    key: str
    fencing_token: int
    lease_seconds: float
    expires_at: dt.datetime


@dataclass(frozen=True)
class ClaimOutcome:
    """The decision of ``claim()``.

    ``CLAIMED``/``TAKEOVER``: run the work under ``lease``, then ``complete()`` or ``fail()``.
    ``REPLAY``: skip the work, use ``result``. ``BUSY``: a live holder runs it; wait ``retry_after``
    seconds and claim again. ``MISMATCH``: the key was used with other inputs; fail without retry.
    ``FAILED_PERMANENTLY``: a non-retryable failure is recorded; fail until a person releases the key.
    """

    status: ClaimStatus
    namespace: str
    key: str
    fingerprint: str
    entry: LedgerEntry
    lease: Lease | None = None
    result: Any = None
    retry_after: float | None = None

    @property
    def proceed(self) -> bool:
        """Whether the caller holds the lease and must run the work."""
        return self.lease is not None

    @property
    def fencing_token(self) -> int:
        """The key's current fencing token (the caller's own when it proceeds)."""
        return self.entry.fencing_token

    @property
    def event(self) -> str:
        """The audit event name of this decision."""
        return CLAIM_EVENTS[self.status]

    @property
    def message(self) -> str:
        """A sentence explaining the decision, for logs and errors."""
        entry, key = self.entry, f"idempotency key {self.key!r} (namespace {self.namespace!r})"
        if self.status is ClaimStatus.CLAIMED:
            return f"Claimed {key} with fencing token {entry.fencing_token}."
        if self.status is ClaimStatus.TAKEOVER:
            return (
                f"Took over {key} with fencing token {entry.fencing_token}: the lease of the previous holder "
                f"{describe_holder(entry.previous_holder)} had expired."
            )
        if self.status is ClaimStatus.REPLAY:
            return (
                f"{key} was completed at {_iso(entry.completed_at)} by {describe_holder(entry.holder)}; "
                "replaying its stored result instead of running the work again."
            )
        if self.status is ClaimStatus.BUSY:
            return (
                f"{key} is being worked on by {describe_holder(entry.holder)} "
                f"(fencing token {entry.fencing_token}, lease until {_iso(entry.lease_expires_at)}); "
                "wait and claim again."
            )
        if self.status is ClaimStatus.MISMATCH:
            return (
                f"{key} was first used with inputs of fingerprint {entry.fingerprint} by "
                f"{describe_holder(entry.origin)}, but this attempt's inputs have fingerprint {self.fingerprint}. "
                "The same key must always describe the same effect: use a different key for different "
                "inputs, or, if the first inputs were wrong, have a person release the key "
                f"(airflow integrity ledger release {self.key!r} --reason ...)."
            )
        return (
            f"{key} failed without retry at {_iso(entry.updated_at)}: {entry.error}. Fix the cause, then have "
            f"a person release the key (airflow integrity ledger release {self.key!r} --reason ...)."
        )

    def audit_details(self) -> dict[str, Any]:
        """JSON-serialisable details for the audit event (fingerprints, never the result itself)."""
        entry = self.entry
        details: dict[str, Any] = {
            "namespace": self.namespace,
            "key": self.key,
            "decision": self.status.value,
            "fingerprint": self.fingerprint,
            "fencing_token": entry.fencing_token,
            "state": entry.state.value,
            "attempts": entry.attempts,
        }
        if self.status is ClaimStatus.TAKEOVER:
            details["previous_holder"] = entry.previous_holder
        if self.status is ClaimStatus.REPLAY:
            details.update(
                result_sha256=entry.result_sha256,
                result_size=entry.result_size,
                completed_at=_iso(entry.completed_at),
                completed_by=entry.holder,
            )
        if self.status is ClaimStatus.BUSY:
            details.update(holder=entry.holder, lease_expires_at=_iso(entry.lease_expires_at))
            details["retry_after"] = self.retry_after
        if self.status is ClaimStatus.MISMATCH:
            details.update(stored_fingerprint=entry.fingerprint, origin=entry.origin)
        if self.status is ClaimStatus.FAILED_PERMANENTLY:
            details["error"] = entry.error
        return details


@dataclass(frozen=True)
class Completion:
    """A key recorded as completed."""

    namespace: str
    key: str
    fencing_token: int
    completed_at: dt.datetime
    result_sha256: str
    result_size: int
    stored_by_reference: bool
    event: str = "completed"

    def audit_details(self) -> dict[str, Any]:
        """JSON-serialisable details for the audit event."""
        return {
            "namespace": self.namespace,
            "key": self.key,
            "fencing_token": self.fencing_token,
            "result_sha256": self.result_sha256,
            "result_size": self.result_size,
            "stored_by_reference": self.stored_by_reference,
        }


@dataclass(frozen=True)
class Failure:
    """A key's attempt recorded as failed."""

    namespace: str
    key: str
    fencing_token: int
    retryable: bool
    error: str
    failed_at: dt.datetime
    event: str = "failed"

    def audit_details(self) -> dict[str, Any]:
        """JSON-serialisable details for the audit event."""
        return {
            "namespace": self.namespace,
            "key": self.key,
            "fencing_token": self.fencing_token,
            "retryable": self.retryable,
            "error": self.error,
        }


@dataclass(frozen=True)
class Release:
    """A key re-opened by a person."""

    namespace: str
    key: str
    previous_state: str
    fencing_token: int
    person: str
    reason: str
    released_at: dt.datetime
    event: str = "released"
    # The last holder (who completed or failed the key) and the origin (the DAG the key belongs to).
    holder: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, Any] = field(default_factory=dict)

    @property
    def dag_id(self) -> str | None:
        """The DAG the key belongs to (its origin's), whose readers may see its release."""
        dag_id = self.origin.get("dag_id")
        return None if dag_id is None else str(dag_id)

    def audit_details(self) -> dict[str, Any]:
        """JSON-serialisable details for the audit event."""
        return {
            "namespace": self.namespace,
            "key": self.key,
            "previous_state": self.previous_state,
            "fencing_token": self.fencing_token,
            "person": self.person,
            "reason": self.reason,
            "task_id": self.holder.get("task_id"),
        }


class StaleHolderError(LedgerError):
    """A holder tried to renew, complete or fail a key it no longer holds (its lease was taken over,
    or the key was settled or released). Its work must not be recorded.

    Args:
        message: The explanation.
        lease: The stale holder's lease.
        entry: The key's entry as it is now (``None`` if it vanished).
    """

    event = "stale_holder_refused"

    def __init__(self, message: str, *, lease: Lease, entry: LedgerEntry | None) -> None:
        super().__init__(message)
        self.lease = lease
        self.entry = entry

    def audit_details(self) -> dict[str, Any]:
        """JSON-serialisable details for the audit event."""
        return {
            "namespace": self.lease.namespace,
            "key": self.lease.key,
            "stale_fencing_token": self.lease.fencing_token,
            "current_fencing_token": self.entry.fencing_token if self.entry else None,
            "current_state": self.entry.state.value if self.entry else None,
            "current_holder": self.entry.holder if self.entry else None,
        }


def _iso(value: dt.datetime | None) -> str:
    return value.isoformat() if value else "-"


def describe_holder(holder: dict[str, Any] | None) -> str:
    """A holder description for messages: its Airflow identity first, then host and pid."""
    if not holder:
        return "an unknown holder"
    known = ("dag_id", "run_id", "task_id", "map_index", "try_number", "ti_id", "host", "pid")
    names = [name for name in known if name in holder] + [name for name in holder if name not in known]
    return "(" + ", ".join(f"{name}={holder[name]}" for name in names) + ")"
