"""What every exactly-once operator shares: its options, its guard, and deferral while another holder works."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_integrity.compat import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_integrity.hooks.idempotency import IdempotencyClaim, IdempotencyGuard

# compensate= of an effect that needs no undoing (a credit bureau pull, a notification): the compensating task
# leaves it as it is, without reporting it as undeclared.
NOTHING_TO_UNDO = "nothing to undo"

# The options every idempotent operator templates (besides its own).
IDEMPOTENCY_TEMPLATE_FIELDS = ("key", "namespace", "business_key", "fingerprint_inputs")


def holder_of(context: Context) -> dict[str, Any]:
    """The task instance's identity, recorded as the holder (and origin) of a key it claims; its host is the one
    Airflow records for the try (``[core] hostname_callable``): the ledger and the grid name the same machine."""
    ti = context["ti"]
    holder: dict[str, Any] = {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "try_number": ti.try_number,
    }
    ti_id = getattr(ti, "id", None)
    if ti_id is not None:
        holder["ti_id"] = str(ti_id)
    host = getattr(ti, "hostname", None)
    if host:
        holder["host"] = str(host)
    return holder


class IdempotencyMixin:
    """Options and behaviour of an operator whose work runs at most once per idempotency key.

    The host class calls ``_init_idempotency`` from its constructor and ``run_guarded`` from ``execute``.
    """

    key: str
    namespace: str
    lease_seconds: float
    fingerprint_inputs: Any
    business_key: str | None
    integrity_conn_id: str | None
    deferrable: bool
    poll_interval: float
    max_wait: float | None
    task_id: str
    log: Any

    defer: Callable[..., Any]
    execute: Callable[..., Any]
    # How to undo this task's effect when its process fails for good (see CompensateOperator); None: it is not.
    compensate: Any = None

    def _init_idempotency(
        self,
        *,
        key: str,
        namespace: str,
        lease_seconds: float,
        fingerprint_inputs: Any,
        business_key: str | None,
        integrity_conn_id: str | None,
        deferrable: bool,
        poll_interval: float,
        max_wait: float | None,
    ) -> None:
        from airflow_integrity.store.limits import MAX_LEASE_SECONDS, duration_problem

        problem = duration_problem(lease_seconds, MAX_LEASE_SECONDS)
        if problem is not None:
            raise ValueError(
                f"Task {self.task_id!r}: lease_seconds={lease_seconds!r} {problem}; give a positive number of "
                f"seconds up to {MAX_LEASE_SECONDS:,.0f} (default 60)."
            )
        self.key = key
        self.namespace = namespace
        self.lease_seconds = lease_seconds
        self.fingerprint_inputs = fingerprint_inputs
        self.business_key = business_key
        self.integrity_conn_id = integrity_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_wait = max_wait

    def undo_effect(self, context: Context, result: Any, effect: dict[str, Any], claim: IdempotencyClaim) -> Any:
        """Undo the effect this task made (its stored ``result``); return a JSON-serialisable result.

        Runs inside the compensating task, under the compensation's claim. The default calls ``compensate``
        with the result, passing the keyword arguments it declares among the task context, ``effect`` (the
        key, namespace, fencing token and task of what is undone) and ``idempotency`` (the compensation's claim).
        """
        from airflow.sdk.bases.decorator import determine_kwargs

        if not callable(self.compensate):
            raise AirflowFailException(f"Task {self.task_id!r} declares no compensation callable.")
        available = {**context, "effect": effect, "idempotency": claim.as_dict()}
        return self.compensate(result, **determine_kwargs(self.compensate, [result], available))

    def build_guard(self, context: Context, default_inputs: Any) -> IdempotencyGuard:
        """The guard for this attempt: rendered key, fingerprint of the inputs, task identity."""
        from airflow_integrity.hooks.idempotency import IdempotencyGuard, fingerprint_of, legacy_fingerprint_of

        key = self.key
        if not isinstance(key, str):
            raise AirflowFailException(
                f"Task {self.task_id!r}: the idempotency key rendered to {key!r} ({type(key).__name__}); "
                "key= must render to text, for example key='claim-{{ params.claim_id }}'."
            )
        explicit = self.fingerprint_inputs is not None
        inputs = self.fingerprint_inputs if explicit else default_inputs
        what = f"fingerprint_inputs of task {self.task_id!r}" if explicit else f"inputs of task {self.task_id!r}"
        digest = fingerprint_of(inputs, key=key, what=what)
        return IdempotencyGuard(
            key=key,
            fingerprint=digest,
            legacy_fingerprint=legacy_fingerprint_of(inputs, key=key, what=what),
            namespace=self.namespace,
            lease_seconds=self.lease_seconds,
            holder=holder_of(context),
            business_key=self.business_key,
            integrity_conn_id=self.integrity_conn_id,
            task_instance=context["ti"],
            max_wait=self.max_wait,
        )

    def run_guarded(self, context: Context, default_inputs: Any, work: Callable[[IdempotencyClaim], Any]) -> Any:
        """Run ``work`` at most once for the key; return its result or the stored one.

        While another live holder works on the key, wait in-process (``deferrable=False``) or defer to
        ``IdempotencyKeyTrigger`` and claim again when it is free (``deferrable=True``).
        """
        from airflow_integrity.hooks.idempotency import HolderBusyError

        guard = self.build_guard(context, default_inputs)
        try:
            outcome = guard.run(work, wait=not self.deferrable)
        except HolderBusyError:
            from airflow_integrity.triggers.idempotency import WAIT_FOR_FREE, IdempotencyKeyTrigger

            self.defer(
                trigger=IdempotencyKeyTrigger(
                    key=guard.key,
                    namespace=guard.namespace,
                    integrity_conn_id=self.integrity_conn_id,
                    wait_for=WAIT_FOR_FREE,
                    poll_interval=self.poll_interval,
                    timeout=self.max_wait,
                ),
                method_name="execute_after_wait",
            )
        if outcome.replayed:
            self.log.info(
                "Idempotency key %r was already completed (fencing token %s); returning its stored result.",
                guard.key,
                outcome.fencing_token,
            )
        return outcome.value

    def execute_after_wait(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the holder this task waited for is gone: claim again (which replays or runs)."""
        if event and event.get("status") == "timeout":
            raise AirflowException(f"{event.get('message')} The next try waits again.")
        self.log.info("Idempotency key %r is no longer held (%s); claiming it again.", self.key, event)
        return self.execute(context)
