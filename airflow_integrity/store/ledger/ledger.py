"""The idempotency ledger: exactly-once effects for business keys, on SQLite and PostgreSQL alike.

A caller claims a key with the fingerprint of its inputs. The first claim wins atomically (one
``INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING`` statement, so any number of processes on any
number of hosts can race); the winner runs the work under a lease it renews with ``LeaseHeartbeat`` and
then completes or fails the key with its fencing token (one ``UPDATE ... WHERE fencing_token = ...``).
Later claims replay the stored result, wait for a live holder, take over from a dead one (fencing token
+ 1), or are refused when their inputs differ. A stale holder that wakes up cannot renew, complete or
fail: every write it attempts is conditional on its token. Each transition is written to the key's
history by a database trigger in the same statement.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from airflow_integrity.store.ledger.codec import (
    FINGERPRINT_SCHEME,
    MAX_PERSON_LENGTH,
    bound_error,
    check_durations,
    encode_holder,
    encode_result,
    holder_info,
    require_text,
    show_key,
    validate_fingerprint,
    validate_key,
    validate_namespace,
)
from airflow_integrity.store.ledger.conn import LedgerConnections, LedgerCursor
from airflow_integrity.store.ledger.defaults import DEFAULT_LEASE_SECONDS, DEFAULT_NAMESPACE
from airflow_integrity.store.ledger.entries import (
    ClaimOutcome,
    ClaimStatus,
    Completion,
    Failure,
    HistoryEntry,
    KeyNotFoundError,
    Lease,
    LedgerEntry,
    LedgerError,
    Release,
    ReleaseRefusedError,
    ResultCorruptedError,
    StaleHolderError,
    State,
    describe_holder,
)
from airflow_integrity.store.ledger.rows import (
    claimed_entry,
    entry_from_row,
    history_from_row,
    required_timestamp,
)
from airflow_integrity.store.ledger.sql import LedgerSql
from airflow_integrity.store.store import IntegrityStore

__all__ = ["DEFAULT_NAMESPACE", "IdempotencyLedger", "holder_info"]

INLINE_RESULT_BYTES = 64 * 1024
MAX_RESULT_BYTES = 64 * 1024 * 1024
# A lost race (the row changed between the refused upsert and the read) is retried this many times.
_CLAIM_ROUNDS = 8


class IdempotencyLedger:
    """Claim, complete, fail, release and inspect idempotency keys in an integrity store.

    The ledger keeps one database connection for its statements; ``close()`` it (or use it as a context
    manager) when done.

    Args:
        store: The (migrated) integrity store.
        namespace: Namespace used when a call names none; keys are unique within a namespace.
        inline_result_bytes: Results up to this size (UTF-8 JSON) are stored in the ledger row; larger ones
            in a separate blob row referenced from it, never shortened.
        max_result_bytes: The largest result stored at all; a larger one raises ``ResultTooLargeError``.
    """

    def __init__(
        self,
        store: IntegrityStore,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        inline_result_bytes: int = INLINE_RESULT_BYTES,
        max_result_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        self.store = store
        self.namespace = validate_namespace(namespace)
        self.inline_result_bytes = inline_result_bytes
        self.max_result_bytes = max_result_bytes
        self._sqlite = store.backend == "sqlite"
        self._sql = LedgerSql.for_dialect(store.backend)
        self._connections = LedgerConnections(store)

    def close(self) -> None:
        """Give back the connection this ledger keeps."""
        self._connections.close()

    def __enter__(self) -> IdempotencyLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _durations(self, lease_seconds: float, ttl_seconds: float | None = None) -> dict[str, Any]:
        if self._sqlite:
            return {
                "lease_seconds": float(lease_seconds),
                "lease_modifier": f"+{lease_seconds:.3f} seconds",
                "ttl_modifier": None if ttl_seconds is None else f"+{ttl_seconds:.3f} seconds",
            }
        return {"lease_seconds": float(lease_seconds), "ttl_seconds": ttl_seconds}

    def _ns(self, namespace: str | None) -> str:
        return self.namespace if namespace is None else validate_namespace(namespace)

    # -- claim -------------------------------------------------------------------------------------

    def claim(
        self,
        key: str,
        *,
        fingerprint: str,
        holder: Mapping[str, Any] | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        ttl_seconds: float | None = None,
        namespace: str | None = None,
        legacy_fingerprint: str | None = None,
    ) -> ClaimOutcome:
        """Decide whether this caller runs the work of ``key``.

        Args:
            key: The business idempotency key (1 to 512 characters).
            fingerprint: SHA-256 of the inputs, from ``inputs_digest(inputs)``.
            holder: Who claims (task instance id, try, DAG, run, task); host and pid are added.
            lease_seconds: How long the claim stays live without a heartbeat.
            ttl_seconds: Forget the key this long after it is first claimed (default: never).
            namespace: The key's namespace (default: the ledger's).
            legacy_fingerprint: The inputs' fingerprint in scheme 1 (``legacy_fingerprint(inputs)``), when it
                differs: a key claimed by an earlier version with the same inputs stored that one.

        Returns:
            A ``ClaimOutcome``; only ``CLAIMED`` and ``TAKEOVER`` carry a lease.
        """
        ns = self._ns(namespace)
        key = validate_key(key, ns)
        validate_fingerprint(fingerprint, key)
        check_durations(key, lease_seconds, ttl_seconds)
        holder_dict, holder_json = encode_holder(holder, key)
        legacy = None if legacy_fingerprint is None else validate_fingerprint(legacy_fingerprint, key)
        params: dict[str, Any] = {
            "namespace": ns,
            "key": key,
            "fingerprint": fingerprint,
            "holder": holder_json,
            "scheme": FINGERPRINT_SCHEME,
        }
        params.update(self._durations(lease_seconds, ttl_seconds))
        for _ in range(_CLAIM_ROUNDS):
            with self._connections.write() as cursor:
                row = cursor.one(self._sql.claim, params)
                if row is not None:
                    entry = claimed_entry(
                        row,
                        namespace=ns,
                        key=key,
                        fingerprint=params["fingerprint"],
                        holder=holder_dict,
                        holder_json=holder_json,
                        lease_seconds=float(lease_seconds),
                    )
                    return self._granted(entry)
                current = cursor.one(self._sql.select, params)
                if current is None:
                    continue
                entry = entry_from_row(current)
                if entry.fingerprint_scheme == 1 and entry.fingerprint == legacy != params["fingerprint"]:
                    # Claimed by an earlier version from these very inputs: decide on its fingerprint.
                    params.update(fingerprint=legacy, scheme=1)
                    continue
                outcome = self._decide(entry, current[-1], params["fingerprint"])
                if outcome is None:
                    continue
                if outcome.status in (ClaimStatus.REPLAY, ClaimStatus.MISMATCH):
                    self._note(cursor, outcome.entry, outcome.event, params["fingerprint"], holder_json)
                if outcome.status is ClaimStatus.REPLAY:
                    outcome = replace(outcome, result=self._load(cursor, outcome.entry))
                return outcome
        raise LedgerError(
            f"Idempotency key {show_key(key)} changed state {_CLAIM_ROUNDS} times while being claimed; "
            "claim it again."
        )

    @staticmethod
    def _granted(entry: LedgerEntry) -> ClaimOutcome:
        status = ClaimStatus.TAKEOVER if entry.last_event == "takeover" else ClaimStatus.CLAIMED
        expires = entry.lease_expires_at
        assert expires is not None
        lease = Lease(entry.namespace, entry.key, entry.fencing_token, entry.lease_seconds, expires)
        return ClaimOutcome(status, entry.namespace, entry.key, entry.fingerprint, entry, lease=lease)

    @staticmethod
    def _decide(entry: LedgerEntry, db_now: Any, offered: str) -> ClaimOutcome | None:
        """Classify a key the claim could not take; ``None`` if it has become claimable meanwhile."""
        now = required_timestamp(db_now)
        live = (
            entry.state is State.IN_PROGRESS
            and entry.lease_expires_at is not None
            and entry.lease_expires_at > now
        )
        expired = entry.expires_at is not None and entry.expires_at <= now
        if entry.state is State.RELEASED or (expired and not live):
            return None
        args = (entry.namespace, entry.key, offered, entry)
        if entry.fingerprint != offered:
            return ClaimOutcome(ClaimStatus.MISMATCH, *args)
        if entry.state is State.COMPLETED:
            return ClaimOutcome(ClaimStatus.REPLAY, *args)
        if entry.state is State.FAILED:
            return None if entry.retryable else ClaimOutcome(ClaimStatus.FAILED_PERMANENTLY, *args)
        if live:
            assert entry.lease_expires_at is not None
            wait = (entry.lease_expires_at - now).total_seconds()
            return ClaimOutcome(ClaimStatus.BUSY, *args, retry_after=wait)
        return None

    def _note(
        self,
        cursor: LedgerCursor,
        entry: LedgerEntry,
        event: str,
        offered: str | None,
        holder_json: str | None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an event that changes nothing (a replay, a refusal) in the key's history."""
        cursor.run(
            self._sql.note,
            {
                "namespace": entry.namespace,
                "key": entry.key,
                "event": event,
                "fingerprint": offered,
                "holder": holder_json,
                "details": None if details is None else json.dumps(details, sort_keys=True, default=str),
            },
        )

    # -- while holding -----------------------------------------------------------------------------

    @staticmethod
    def _held(lease: Lease) -> dict[str, Any]:
        return {"namespace": lease.namespace, "key": lease.key, "token": lease.fencing_token}

    def renew(self, lease: Lease) -> Lease:
        """Extend ``lease`` by its length from now (database clock).

        Raises:
            StaleHolderError: the lease was taken over, or the key settled or released, meanwhile.
        """
        params = {**self._held(lease), **self._durations(lease.lease_seconds)}
        with self._connections.write() as cursor:
            row = cursor.one(self._sql.renew, params)
        if row is None:
            if self._settled(lease, State.COMPLETED) or self._settled(lease, State.FAILED):
                return lease  # this holder settled the key itself (a renewal that crossed its completion)
            raise self._stale(lease, "renew its lease")
        return replace(lease, expires_at=required_timestamp(row[0]))

    def complete(self, lease: Lease, result: Any) -> Completion:
        """Record the work of ``lease`` as done with ``result`` (replayed to every later claim).

        Args:
            lease: The lease from the winning claim.
            result: A JSON-serialisable value; up to the inline limit it lives in the ledger row, beyond it
                in a blob row, never shortened.

        Raises:
            StaleHolderError: the lease was taken over, or the key settled or released, meanwhile.
            ResultNotSerializableError, ResultTooLargeError: the result cannot be stored.
        """
        encoded = encode_result(result, lease.key, max_bytes=self.max_result_bytes)
        by_reference = encoded.size > self.inline_result_bytes
        params = {
            **self._held(lease),
            "result_json": None if by_reference else encoded.text,
            "result_ref": None,
            "result_size": encoded.size,
            "result_sha256": encoded.sha256,
        }
        if by_reference:
            try:
                with self._connections.transaction() as cursor:
                    blob = {"sha256": encoded.sha256, "size": encoded.size, "body": encoded.text.encode()}
                    ref = cursor.one(self._sql.insert_blob, {**params, **blob})
                    assert ref is not None
                    params["result_ref"] = ref[0]
                    row = cursor.one(self._sql.complete, params)
                    if row is None:
                        # Roll the blob back too: a stale holder's result leaves no trace.
                        raise _Refused
            except _Refused:
                row = None
        else:
            with self._connections.write() as cursor:
                row = cursor.one(self._sql.complete, params)
        if row is None:
            done = self._settled(lease, State.COMPLETED)
            if done is None or done.result_sha256 != encoded.sha256:
                raise self._stale(lease, "complete it")
            # An earlier call of this holder completed it and its answer was lost (a dropped connection).
            row = (done.completed_at,)
        completed_at = required_timestamp(row[0])
        return Completion(
            lease.namespace,
            lease.key,
            lease.fencing_token,
            completed_at,
            encoded.sha256,
            encoded.size,
            by_reference,
        )

    def fail(self, lease: Lease, error: object, *, retryable: bool) -> Failure:
        """Record the attempt of ``lease`` as failed.

        Args:
            lease: The lease from the winning claim.
            error: What went wrong (its text is kept, at most 8 KiB, marked when shortened).
            retryable: ``True`` re-opens the key for the next attempt; ``False`` fails every later claim
                with ``FAILED_PERMANENTLY`` until a person releases the key.

        Raises:
            StaleHolderError: the lease was taken over, or the key settled or released, meanwhile.
        """
        message = bound_error(error)
        params = {**self._held(lease), "retryable": bool(retryable), "error": message}
        with self._connections.write() as cursor:
            row = cursor.one(self._sql.fail, params)
        if row is None:
            done = self._settled(lease, State.FAILED)
            if done is None or done.retryable is not bool(retryable) or done.error != message:
                raise self._stale(lease, "record its failure")
            row = (done.updated_at,)
        failed_at = required_timestamp(row[0])
        return Failure(lease.namespace, lease.key, lease.fencing_token, bool(retryable), message, failed_at)

    def _settled(self, lease: Lease, state: State) -> LedgerEntry | None:
        """The key's entry if this very holder already brought it to ``state`` (a retried call), else ``None``."""
        with self._connections.read() as cursor:
            row = cursor.one(self._sql.select, self._held(lease))
        entry = None if row is None else entry_from_row(row)
        if entry is None or entry.state is not state or entry.fencing_token != lease.fencing_token:
            return None
        return entry

    def _stale(self, lease: Lease, action: str) -> StaleHolderError:
        with self._connections.write() as cursor:
            row = cursor.one(self._sql.select, self._held(lease))
            entry = None if row is None else entry_from_row(row)
            if entry is not None:
                details = {"stale_token": lease.fencing_token, "refused": action}
                self._note(cursor, entry, StaleHolderError.event, None, None, details)
        if entry is None:
            now = "no longer exists"
        elif entry.fencing_token != lease.fencing_token:
            now = f"was taken over by {describe_holder(entry.holder)} with fencing token {entry.fencing_token}"
        else:
            now = f"is {entry.state.value} (last event: {entry.last_event})"
        return StaleHolderError(
            f"Refused to let the holder with fencing token {lease.fencing_token} {action}: idempotency key "
            f"{show_key(lease.key)} (namespace {lease.namespace!r}) {now}. This attempt lost its lease; its "
            "work must not be recorded, and the key's stored outcome stands.",
            lease=lease,
            entry=entry,
        )

    # -- people ------------------------------------------------------------------------------------

    def release(self, key: str, *, reason: str, person: str, namespace: str | None = None) -> Release:
        """Re-open a completed or failed key (or one whose holder's lease expired) so that the next claim
        runs the work again; the person and the reason are recorded in its history.

        Args:
            key: The idempotency key.
            reason: Why it is released (required).
            person: Who releases it (required).
            namespace: The key's namespace (default: the ledger's).

        Raises:
            KeyNotFoundError: no such key.
            ReleaseRefusedError: a live holder works on it, or it is already released.
        """
        ns = self._ns(namespace)
        key = validate_key(key, ns)
        reason = require_text(reason, "reason", key)
        person = require_text(person, "person", key, MAX_PERSON_LENGTH)
        params = {"namespace": ns, "key": key, "reason": reason, "person": person}
        with self._connections.write() as cursor:
            row = cursor.one(self._sql.release, params)
            current = None if row is not None else cursor.one(self._sql.select, params)
        if row is not None:
            holder, origin = (json.loads(value) if value else {} for value in (row[3], row[4]))
            return Release(
                ns,
                key,
                row[2],
                int(row[0]),
                person,
                reason,
                required_timestamp(row[1]),
                holder=holder,
                origin=origin,
            )
        if current is None:
            raise KeyNotFoundError(f"No idempotency key {show_key(key)} in namespace {ns!r}; nothing to release.")
        entry = entry_from_row(current)
        if entry.state is State.RELEASED:
            raise ReleaseRefusedError(
                f"Idempotency key {show_key(key)} (namespace {ns!r}) is already released (by "
                f"{entry.last_person}: {entry.last_reason}); the next claim runs the work."
            )
        raise ReleaseRefusedError(
            f"Idempotency key {show_key(key)} (namespace {ns!r}) is being worked on by "
            f"{describe_holder(entry.holder)} (lease until {entry.lease_expires_at}); releasing it now could "
            "run the work twice. Wait for the attempt to finish or its lease to expire, then release it."
        )

    # -- reading -----------------------------------------------------------------------------------

    def get(self, key: str, *, namespace: str | None = None) -> LedgerEntry | None:
        """The key's entry, or ``None`` if it was never claimed."""
        ns = self._ns(namespace)
        params = {"namespace": ns, "key": validate_key(key, ns)}
        with self._connections.read() as cursor:
            row = cursor.one(self._sql.select, params)
        return None if row is None else entry_from_row(row)

    def load_result(self, entry: LedgerEntry) -> Any:
        """The stored result of a completed ``entry`` (read from its blob row if stored by reference)."""
        with self._connections.read() as cursor:
            return self._load(cursor, entry)

    def _load(self, cursor: LedgerCursor, entry: LedgerEntry) -> Any:
        if entry.result_ref is None:
            body = None if entry.result_json is None else entry.result_json.encode("utf-8")
        else:
            row = cursor.one(self._sql.select_blob, {"ref": entry.result_ref})
            body = None if row is None else bytes(row[2])
        if body is None or hashlib.sha256(body).hexdigest() != entry.result_sha256:
            raise ResultCorruptedError(
                f"The stored result of idempotency key {show_key(entry.key)} (namespace {entry.namespace!r}) is "
                f"missing or does not match its recorded SHA-256 {entry.result_sha256}; the store has been "
                "altered. Restore it from a backup, or release the key to run the work again."
            )
        return json.loads(body)

    def history(self, key: str, *, namespace: str | None = None) -> list[HistoryEntry]:
        """Every recorded event of ``key``, oldest first."""
        ns = self._ns(namespace)
        params = {"namespace": ns, "key": validate_key(key, ns)}
        with self._connections.read() as cursor:
            rows = cursor.all(self._sql.history, params)
        return [history_from_row(row) for row in rows]


class _Refused(Exception):
    """Raised inside a transaction to roll it back when a conditional write matched no row."""
