"""Guarded execution: run a piece of work at most once per idempotency key, from any Airflow task.

``IdempotencyGuard`` is the one code path that ``@task.idempotent``, ``IdempotentPythonOperator`` and
``IdempotentHttpOperator`` share. It claims the key in the ledger, records the decision as an
``idempotency.<event>`` audit event, and then replays the stored result, refuses (mismatch, permanent
failure), waits for a live holder, or runs the work under a renewed lease and records its outcome with the
lease's fencing token.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_integrity.audit import build_event
from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.store.ledger import IdempotencyLedger
from airflow_integrity.store.ledger_codec import fingerprint, show_key, validate_key, validate_namespace
from airflow_integrity.store.ledger_defaults import DEFAULT_LEASE_SECONDS, DEFAULT_NAMESPACE
from airflow_integrity.store.ledger_heartbeat import LeaseHeartbeat
from airflow_integrity.store.ledger_types import (
    ClaimOutcome,
    ClaimStatus,
    LedgerInputError,
    ResultNotSerializableError,
    ResultTooLargeError,
    StaleHolderError,
)

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "GuardedResult",
    "HolderBusyError",
    "IdempotencyClaim",
    "IdempotencyGuard",
    "current_claim",
    "fingerprint_of",
]

log = logging.getLogger(__name__)

EVENT_PREFIX = "idempotency."
# In-process waiting for a live holder: first pause, growth factor and longest pause, in seconds.
_FIRST_PAUSE, _GROWTH, _LONGEST_PAUSE = 0.05, 1.6, 5.0

_CURRENT: contextvars.ContextVar[IdempotencyClaim | None] = contextvars.ContextVar(
    "airflow_integrity_idempotency_claim", default=None
)


@dataclass(frozen=True)
class IdempotencyClaim:
    """The lease the running work holds: pass ``key`` and ``fencing_token`` to downstream systems.

    Args:
        key: The idempotency key.
        namespace: Its namespace.
        fencing_token: Grows with every new holder; a downstream system that has seen a higher token for the
            key should refuse this one.
        fingerprint: SHA-256 of the inputs that define the effect.
        takeover: Whether this attempt took the key over from a holder whose lease had expired.
    """

    key: str
    namespace: str
    fencing_token: int
    fingerprint: str
    takeover: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view, as put in the task context under ``idempotency``."""
        return {
            "key": self.key,
            "namespace": self.namespace,
            "fencing_token": self.fencing_token,
            "fingerprint": self.fingerprint,
            "takeover": self.takeover,
        }


def current_claim() -> IdempotencyClaim | None:
    """The claim of the guarded work running in this thread, or ``None`` outside guarded work."""
    return _CURRENT.get()


@dataclass(frozen=True)
class GuardedResult:
    """What a guarded run produced.

    Args:
        value: The work's result, or the stored result of the attempt that completed the key.
        status: ``CLAIMED`` or ``TAKEOVER`` when this attempt ran the work, ``REPLAY`` when it did not.
        fencing_token: The fencing token of the attempt that produced ``value``.
    """

    value: Any
    status: ClaimStatus
    fencing_token: int

    @property
    def replayed(self) -> bool:
        """Whether the value is a stored result rather than this attempt's own."""
        return self.status is ClaimStatus.REPLAY


class HolderBusyError(AirflowException):
    """A live holder works on the key and the caller asked not to wait in-process (it defers instead).

    Args:
        outcome: The ``BUSY`` claim outcome (holder, lease expiry, ``retry_after``).
    """

    def __init__(self, outcome: ClaimOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def fingerprint_of(inputs: Any, *, key: str, what: str) -> str:
    """The fingerprint of ``inputs``, or an ``AirflowFailException`` naming the value that has none.

    Args:
        inputs: The values that define the effect.
        key: The idempotency key (named in the error).
        what: Where the inputs came from, for example ``"op_args/op_kwargs of task 'pay'"``.
    """
    try:
        return fingerprint(inputs)
    except LedgerInputError as exc:
        raise AirflowFailException(
            f"Cannot fingerprint the {what} for idempotency key {show_key(key)}: {exc} Alternatively pass "
            "fingerprint_inputs= with the JSON-like values that define the effect (for example "
            "{'claim_id': ..., 'amount': ...})."
        ) from exc


class IdempotencyGuard:
    """Run work at most once per idempotency key and replay its result to every later attempt.

    Args:
        key: The rendered idempotency key (1 to 512 characters).
        fingerprint: SHA-256 of the inputs that define the effect (``fingerprint_of(inputs, ...)``).
        namespace: The key's namespace.
        lease_seconds: How long a claim stays live without a heartbeat; a killed worker's retry can take the
            key over this long after its last heartbeat.
        holder: Who claims (DAG, run, task, try); recorded as the key's origin and shown in conflicts.
        business_key: Business key of the audit events (default: the key).
        integrity_conn_id: Connection of the integrity store (default: ``[integrity] conn_id``).
        task_instance: The running task instance, attached to the audit events (default: the current one).
        max_wait: Longest in-process wait for a live holder, in seconds (``None``: as long as it holds).
    """

    def __init__(
        self,
        *,
        key: str,
        fingerprint: str,
        namespace: str = DEFAULT_NAMESPACE,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        holder: Mapping[str, Any] | None = None,
        business_key: str | None = None,
        integrity_conn_id: str | None = None,
        task_instance: Any = None,
        max_wait: float | None = None,
    ) -> None:
        try:
            self.namespace = validate_namespace(namespace)
            self.key = validate_key(key, self.namespace)
        except LedgerInputError as exc:
            raise AirflowFailException(f"{exc} (Set key= / namespace= of the idempotent task.)") from exc
        if not lease_seconds > 0:
            raise AirflowFailException(
                f"lease_seconds={lease_seconds!r} for idempotency key {show_key(self.key)} must be a positive "
                "number of seconds (default 60)."
            )
        self.fingerprint = fingerprint
        self.lease_seconds = float(lease_seconds)
        self.holder = dict(holder or {})
        self.business_key = business_key or self.key
        self.hook = IntegrityCheckHook(integrity_conn_id=integrity_conn_id)
        self.task_instance = task_instance
        self.max_wait = max_wait

    # -- audit -------------------------------------------------------------------------------------

    def record(self, event: str, details: Mapping[str, Any]) -> None:
        """Append ``idempotency.<event>`` to the audit trail for this key's business key."""
        self.hook.record_event(
            build_event(
                EVENT_PREFIX + event,
                task_instance=self.task_instance,
                business_key=self.business_key,
                details=details,
            )
        )

    # -- the decision ------------------------------------------------------------------------------

    def run(self, work: Callable[[IdempotencyClaim], Any], *, wait: bool = True) -> GuardedResult:
        """Claim the key and act on the decision.

        Args:
            work: Called with the claim when this attempt must do the work; returns a JSON-serialisable result.
            wait: Wait in-process (with backoff) while a live holder works on the key; ``False`` raises
                ``HolderBusyError`` instead, so that the caller can defer.

        Raises:
            AirflowFailException: The key was used with other inputs, failed without retry, or the result
                cannot be stored.
            HolderBusyError: ``wait=False`` and a live holder works on the key.
            StaleHolderError: This attempt lost its lease while working; its result was not recorded.
        """
        with self.hook.get_ledger(self.namespace) as ledger:
            outcome = self._claim(ledger, wait=wait)
            if outcome.proceed:
                return self._execute(ledger, outcome, work)
            self.record(outcome.event, outcome.audit_details())
            if outcome.status is ClaimStatus.REPLAY:
                log.info("%s", outcome.message)
                return GuardedResult(outcome.result, outcome.status, outcome.fencing_token)
            raise AirflowFailException(outcome.message)

    def _claim(self, ledger: IdempotencyLedger, *, wait: bool) -> ClaimOutcome:
        started, pause, announced = time.monotonic(), _FIRST_PAUSE, False
        while True:
            outcome = ledger.claim(
                self.key,
                fingerprint=self.fingerprint,
                holder=self.holder,
                lease_seconds=self.lease_seconds,
                namespace=self.namespace,
            )
            if outcome.status is not ClaimStatus.BUSY:
                return outcome
            if not announced:
                # One "conflict" event per wait, not one per poll.
                self.record(outcome.event, outcome.audit_details())
                log.info("%s", outcome.message)
                announced = True
            if not wait:
                raise HolderBusyError(outcome)
            if self.max_wait is not None and time.monotonic() - started > self.max_wait:
                raise AirflowException(
                    f"Gave up waiting after {self.max_wait:g} s: {outcome.message} The next try waits again."
                )
            time.sleep(min(pause, max(outcome.retry_after or pause, _FIRST_PAUSE)))
            pause = min(pause * _GROWTH, _LONGEST_PAUSE)

    def _execute(
        self, ledger: IdempotencyLedger, outcome: ClaimOutcome, work: Callable[..., Any]
    ) -> GuardedResult:
        lease = outcome.lease
        assert lease is not None
        claim = IdempotencyClaim(
            key=self.key,
            namespace=self.namespace,
            fencing_token=lease.fencing_token,
            fingerprint=self.fingerprint,
            takeover=outcome.status is ClaimStatus.TAKEOVER,
        )
        log.info("%s", outcome.message)
        try:
            self.record(outcome.event, outcome.audit_details())
            with LeaseHeartbeat(ledger, lease):
                token = _CURRENT.set(claim)
                try:
                    value = work(claim)
                finally:
                    _CURRENT.reset(token)
            completion = ledger.complete(lease, value)
        except StaleHolderError as refusal:
            self.record(refusal.event, refusal.audit_details())
            raise
        except (ResultNotSerializableError, ResultTooLargeError) as exc:
            # The effect may have happened: running it again could duplicate it, so a person decides.
            self._fail(ledger, lease, exc, retryable=False)
            raise AirflowFailException(
                f"{exc} The work ran but its result was not recorded, so idempotency key {show_key(self.key)} "
                "is marked failed without retry: check whether the effect happened, fix the result, then "
                f"release the key (airflow integrity ledger release {self.key!r} --reason ...)."
            ) from exc
        except AirflowFailException as exc:
            self._fail(ledger, lease, exc, retryable=False)
            raise
        except BaseException as exc:
            # Any other failure (including a task that has no retries left) leaves the key claimable, so
            # that a retry or a later clear of the task runs the work.
            self._fail(ledger, lease, exc, retryable=True)
            raise
        self.record(completion.event, completion.audit_details())
        return GuardedResult(value, outcome.status, lease.fencing_token)

    def _fail(self, ledger: IdempotencyLedger, lease: Any, exc: BaseException, *, retryable: bool) -> None:
        error = f"{type(exc).__name__}: {exc}"
        try:
            failure = ledger.fail(lease, error, retryable=retryable)
        except StaleHolderError as refusal:
            log.error("%s", refusal)
            self.record(refusal.event, refusal.audit_details())
            return
        self.record(failure.event, failure.audit_details())
