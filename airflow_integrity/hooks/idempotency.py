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
from dataclasses import dataclass, replace
from typing import Any

from airflow_integrity.compat import AirflowException, AirflowFailException
from airflow_integrity.hooks.events import build_event, redact_text
from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.store.errors import StoreError
from airflow_integrity.store.ledger.codec import (
    COMPENSATION_SUFFIX,
    check_durations,
    compensation_key,
    inputs_digest,
    legacy_fingerprint,
    show_key,
    validate_key,
    validate_namespace,
)
from airflow_integrity.store.ledger.defaults import DEFAULT_LEASE_SECONDS, DEFAULT_NAMESPACE
from airflow_integrity.store.ledger.entries import (
    ClaimOutcome,
    ClaimStatus,
    Completion,
    Lease,
    LedgerInputError,
    ResultCorruptedError,
    ResultNotSerializableError,
    ResultTooLargeError,
    StaleHolderError,
    State,
    describe_holder,
)
from airflow_integrity.store.ledger.heartbeat import LeaseHeartbeat
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from airflow_integrity.store.limits import MAX_BUSINESS_KEY_LENGTH

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
# Retrying a completion the store did not take: first pause and longest pause, in seconds; the retries stop
# this long (at most) before the lease would run out.
_COMPLETION_PAUSE, _COMPLETION_LONGEST_PAUSE, _COMPLETION_MARGIN = 0.1, 5.0, 1.0

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
        return inputs_digest(inputs)
    except LedgerInputError as exc:
        raise _unfingerprintable(exc, key, what) from exc


def legacy_fingerprint_of(inputs: Any, *, key: str, what: str) -> str | None:
    """The fingerprint an earlier version stored for ``inputs``, when it differs from :func:`fingerprint_of`."""
    try:
        return legacy_fingerprint(inputs)
    except LedgerInputError as exc:
        raise _unfingerprintable(exc, key, what) from exc


def _unfingerprintable(exc: LedgerInputError, key: str, what: str) -> AirflowFailException:
    return AirflowFailException(
        f"Cannot fingerprint the {what} for idempotency key {show_key(key)}: {exc} Alternatively pass "
        "fingerprint_inputs= with the JSON-like values that define the effect (for example "
        "{'claim_id': ..., 'amount': ...})."
    )


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
        legacy_fingerprint: The inputs' fingerprint as an earlier version computed it, when it differs
            (:func:`legacy_fingerprint_of`), so that a key it claimed is still recognised.
        person: The person on whose behalf the work runs (an API user): the actor of the key's audit events.
        dag_id: The DAG the key's audit events belong to when no task instance runs the work (an API call).
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
        legacy_fingerprint: str | None = None,
        person: str | None = None,
        dag_id: str | None = None,
    ) -> None:
        # Everything is checked before the key is claimed: a key that could be claimed but not audited
        # would never run.
        try:
            self.namespace = validate_namespace(namespace)
            self.key = validate_key(key, self.namespace)
            check_durations(self.key, lease_seconds)
        except LedgerInputError as exc:
            raise AirflowFailException(f"{exc} (Set key= / namespace= / lease_seconds= of the task.)") from exc
        self.business_key = business_key or self.key
        if not isinstance(self.business_key, str) or len(self.business_key) > MAX_BUSINESS_KEY_LENGTH:
            raise AirflowFailException(
                f"business_key {self.business_key!r:.80} of idempotency key {show_key(self.key)} must be text of "
                f"at most {MAX_BUSINESS_KEY_LENGTH} characters (it names the key's audit events); shorten it."
            )
        self.fingerprint = fingerprint
        self.legacy_fingerprint = legacy_fingerprint
        self.lease_seconds = float(lease_seconds)
        self.holder = dict(holder or {})
        self._asked = time.monotonic()
        self.hook = IntegrityCheckHook(integrity_conn_id=integrity_conn_id)
        self.task_instance = task_instance
        self.max_wait = max_wait
        self.person = person
        self.dag_id = dag_id

    # -- audit -------------------------------------------------------------------------------------

    def record(self, event: str, details: Mapping[str, Any]) -> None:
        """Append ``idempotency.<event>`` to the audit trail for this key's business key."""
        recorded = build_event(
            EVENT_PREFIX + event,
            task_instance=self.task_instance,
            business_key=self.business_key,
            details=details,
            user=self.person,
        )
        if self.dag_id is not None and recorded.dag_id is None:
            recorded = replace(recorded, dag_id=self.dag_id)
        self.hook.record_event(recorded)

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
            try:
                outcome = self._claim(ledger, wait=wait)
            except ResultCorruptedError as exc:
                self.record("result_corrupted", {"namespace": self.namespace, "key": self.key, "error": str(exc)})
                raise AirflowFailException(str(exc)) from exc
            if outcome.proceed:
                return self._execute(ledger, outcome, work)
            if outcome.status is ClaimStatus.REPLAY:
                self._refuse_if_compensated(ledger)
            self.record(outcome.event, outcome.audit_details())
            if outcome.status is ClaimStatus.REPLAY:
                log.info("%s", outcome.message)
                return GuardedResult(outcome.result, outcome.status, outcome.fencing_token)
            raise AirflowFailException(outcome.message)

    def _refuse_if_compensated(self, ledger: IdempotencyLedger) -> None:
        """A completed key whose effect is being or was undone has no result to replay: refuse, audited."""
        if self.key.endswith(COMPENSATION_SUFFIX):
            return
        undo = ledger.get(compensation_key(self.key), namespace=self.namespace)
        if undo is None or undo.state is State.RELEASED:
            return
        details = {
            "namespace": self.namespace,
            "key": self.key,
            "compensation_key": undo.key,
            "compensation_state": undo.state.value,
            "compensated_by": undo.holder,
        }
        self.record("refused_compensated", details)
        done = "was undone" if undo.state is State.COMPLETED else f"is being undone ({undo.state.value})"
        raise AirflowFailException(
            f"The effect of idempotency key {show_key(self.key)} (namespace {self.namespace!r}) {done} by "
            f"{describe_holder(undo.holder)}, so there is no result to replay and the key must not run again. "
            "Start the process again under a new key; or, if the compensation did not happen, release "
            f"{show_key(undo.key)} (airflow integrity ledger release {undo.key!r} --namespace {self.namespace!r} "
            "--reason ...) to replay the original result."
        )

    def _claim(self, ledger: IdempotencyLedger, *, wait: bool) -> ClaimOutcome:
        started, pause, announced = time.monotonic(), _FIRST_PAUSE, False
        while True:
            self._asked = time.monotonic()
            outcome = ledger.claim(
                self.key,
                fingerprint=self.fingerprint,
                holder=self.holder,
                lease_seconds=self.lease_seconds,
                namespace=self.namespace,
                legacy_fingerprint=self.legacy_fingerprint,
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
            fingerprint=outcome.fingerprint,
            takeover=outcome.status is ClaimStatus.TAKEOVER,
        )
        log.info("%s", outcome.message)
        try:
            self.record(outcome.event, outcome.audit_details())
            with LeaseHeartbeat(ledger, lease, granted_at=self._asked) as heartbeat:
                token = _CURRENT.set(claim)
                try:
                    value = work(claim)
                finally:
                    _CURRENT.reset(token)
                # From here on the effect has happened: whatever goes wrong, the outcome may never again be
                # "run the work".
                try:
                    heartbeat.raise_if_lost()
                    completion = self._complete(ledger, heartbeat, value)
                    heartbeat.settle()
                except StaleHolderError:
                    raise
                except BaseException as exc:
                    raise _AfterTheEffect(heartbeat.lease, exc) from exc
        except StaleHolderError as refusal:
            self.record(refusal.event, refusal.audit_details())
            raise
        except _AfterTheEffect as after:
            raise self._settle_for_a_person(ledger, after.lease, after.cause) from after.cause
        except AirflowFailException as exc:
            self._fail(ledger, lease, exc, retryable=False)
            raise
        except BaseException as exc:
            # Any other failure of the work (including a task that has no retries left) leaves the key
            # claimable, so that a retry or a later clear of the task runs the work.
            self._fail(ledger, lease, exc, retryable=True)
            raise
        self.record(completion.event, completion.audit_details())
        return GuardedResult(value, outcome.status, lease.fencing_token)

    def _settle_for_a_person(
        self, ledger: IdempotencyLedger, lease: Lease, cause: BaseException
    ) -> AirflowFailException:
        """The work returned and something went wrong after it: mark the key failed without retry and say why."""
        key = show_key(self.key)
        release = f"airflow integrity ledger release {self.key!r} --namespace {self.namespace!r} --reason ..."
        if isinstance(cause, (ResultNotSerializableError, ResultTooLargeError)):
            self._fail(ledger, lease, cause, retryable=False)
            return AirflowFailException(
                f"{cause} The work ran but its result was not recorded, so idempotency key {key} is marked failed "
                "without retry: check whether the effect happened, fix the result, then release the key "
                f"({release})."
            )
        if isinstance(cause, _CompletionNotRecorded):
            return self._unrecorded(ledger, cause)
        # A timeout or a signal while the completion was written, or anything else after the work returned.
        recorded = self._fail(ledger, lease, cause, retryable=False, effect=True)
        settled = (
            "The key is marked failed without retry, so no attempt runs the work again"
            if recorded
            else "The key could not be marked failed either; it stays held with fencing token "
            f"{lease.fencing_token}"
        )
        return AirflowFailException(
            f"The work of idempotency key {key} ran, but then {type(cause).__name__}: {cause}: the effect may "
            f"have happened. {settled}: check whether the effect happened, then release the key ({release}) if "
            "it must run again."
        )

    def _complete(self, ledger: IdempotencyLedger, heartbeat: LeaseHeartbeat, value: Any) -> Completion:
        """Record the result; while the lease holds, retry what the store could not take (a lock timeout, a
        dropped connection): the work has run, so giving up here must never re-open the key for a retry."""
        pause = _COMPLETION_PAUSE
        while True:
            try:
                return ledger.complete(heartbeat.lease, value)
            except (StaleHolderError, LedgerInputError):
                raise
            except StoreError as exc:
                heartbeat.raise_if_lost()
                if not heartbeat.holds(margin=pause + _COMPLETION_MARGIN):
                    raise _CompletionNotRecorded(heartbeat.lease, exc) from exc
                log.warning(
                    "Idempotency key %r: the result could not be recorded yet (retrying in %.1f s while the lease "
                    "holds): %s",
                    self.key,
                    pause,
                    exc,
                )
                time.sleep(pause)
                pause = min(pause * 2, _COMPLETION_LONGEST_PAUSE)

    def _unrecorded(self, ledger: IdempotencyLedger, lost: _CompletionNotRecorded) -> AirflowFailException:
        """The work ran and its completion could not be recorded while the lease held: settle the key as
        failed without retry, so that only a person re-opens it; say so, audited."""
        key = show_key(self.key)
        release = f"airflow integrity ledger release {self.key!r} --namespace {self.namespace!r} --reason ..."
        cause = f"its completion could not be recorded ({type(lost.cause).__name__}: {lost.cause})"
        if self._fail(ledger, lost.lease, lost.cause, retryable=False, effect=True):
            return AirflowFailException(
                f"The work of idempotency key {key} ran, but {cause}: the effect may have happened. The key is "
                "marked failed without retry, so no attempt runs the work again: check whether the effect "
                f"happened, then release the key ({release}) if it must run again."
            )
        self._record_safely(
            "completion_unrecorded",
            {
                "namespace": self.namespace,
                "key": self.key,
                "fencing_token": lost.lease.fencing_token,
                "effect_may_have_happened": True,
                "error": redact_text(f"{type(lost.cause).__name__}: {lost.cause}"),
            },
        )
        return AirflowFailException(
            f"The work of idempotency key {key} ran, but {cause}, nor could the key be marked failed: the effect "
            "may have happened. The store still shows the key held with fencing token "
            f"{lost.lease.fencing_token}; "
            "once its lease runs out another attempt could take it over and run the work again. Check whether "
            "the effect happened before clearing or re-running anything with this key."
        )

    def _fail(
        self,
        ledger: IdempotencyLedger,
        lease: Lease,
        exc: BaseException,
        *,
        retryable: bool,
        effect: bool = False,
    ) -> bool:
        """Record the attempt as failed (its error masked by Airflow's secrets masker); whether it was recorded."""
        error = redact_text(f"{type(exc).__name__}: {exc}")
        if effect:
            error = f"The work ran; its completion could not be recorded, so the effect may have happened. {error}"
        try:
            failure = ledger.fail(lease, error, retryable=retryable)
        except StaleHolderError as refusal:
            log.error("%s", refusal)
            self._record_safely(refusal.event, refusal.audit_details())
            return False
        except StoreError as store_error:
            log.error("Idempotency key %r: the failure could not be recorded: %s", self.key, store_error)
            return False
        details = failure.audit_details()
        if effect:
            details["effect_may_have_happened"] = True
        self._record_safely(failure.event, details)
        return True

    def _record_safely(self, event: str, details: Mapping[str, Any]) -> None:
        """Record an event while another error is on its way out: never let the audit hide that error."""
        try:
            self.record(event, details)
        except Exception:
            log.exception("Audit event %s%s of idempotency key %r not recorded", EVENT_PREFIX, event, self.key)


class _CompletionNotRecorded(Exception):
    """The work returned and its completion could not be written while the lease held."""

    def __init__(self, lease: Lease, cause: StoreError) -> None:
        super().__init__(str(cause))
        self.lease = lease
        self.cause = cause


class _AfterTheEffect(Exception):
    """Something went wrong after the guarded work returned (carries the lease and the cause)."""

    def __init__(self, lease: Lease, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.lease = lease
        self.cause = cause
