"""``IdempotentPythonOperator``: a Python callable whose effect happens once per business key."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.python import PythonOperator

from airflow_integrity.compat import AirflowFailException
from airflow_integrity.operators._idempotency import (
    IDEMPOTENCY_TEMPLATE_FIELDS,
    NOTHING_TO_UNDO,
    IdempotencyMixin,
)
from airflow_integrity.settings import default_deferrable
from airflow_integrity.store.ledger import DEFAULT_LEASE_SECONDS, DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_integrity.hooks.idempotency import IdempotencyClaim

__all__ = ["NOTHING_TO_UNDO", "IdempotentPythonOperator", "current_claim"]


def current_claim() -> IdempotencyClaim | None:
    """The claim of the guarded work running in this thread, or ``None`` outside guarded work.

    Importing it costs a DAG file nothing: the guard (and the store behind it) loads when a task calls it.
    """
    from airflow_integrity.hooks.idempotency import current_claim as claim_of_this_thread

    return claim_of_this_thread()


class IdempotentPythonOperator(IdempotencyMixin, PythonOperator):
    """Run ``python_callable`` at most once per idempotency key and replay its result to every later attempt.

    The first attempt to claim the key runs the callable under a lease (renewed in the background) and records
    its JSON-serialisable return value; retries, clears, duplicate runs and other DAGs using the same key skip
    the callable and return that value. The same key with different inputs fails without retry. While another
    live attempt holds the key this task waits (or defers); when that attempt died, this one takes the key over
    with a higher fencing token once its lease has expired.

    The callable finds its claim in the context under ``idempotency`` (``{"key", "namespace",
    "fencing_token", "fingerprint", "takeover"}``; declare an ``idempotency=None`` parameter or ``**context``),
    or through ``current_claim()``; pass the key and token downstream so that other systems can deduplicate
    and fence too.

    Args:
        key: The business idempotency key (templated), for example ``"claim-{{ params.claim_id }}"``.
        namespace: The key's namespace (templated).
        lease_seconds: How long a claim stays live without a heartbeat (renewed every third of it). A retry of
            a killed worker takes the key over at most this long after the worker died.
        fingerprint_inputs: The values that define the effect (templated); default ``op_args`` and
            ``op_kwargs``. Override when they hold values without a canonical form or values that do not
            change the effect.
        business_key: Business key of the audit events (templated; default: the key).
        integrity_conn_id: Connection of the integrity store (default: ``[integrity] conn_id``).
        deferrable: Wait for another holder in the triggerer instead of in the worker.
        poll_interval: Seconds between looks at the ledger while deferred.
        max_wait: Longest wait for another holder, in seconds, before this try fails (retryably).
        compensate: Undoes the effect when the process fails for good after it happened (run by the DAG's
            ``CompensateOperator``, exactly once per effect): called with the stored result, and with
            ``effect=``, ``idempotency=`` (the compensation's claim) and context values if it declares them;
            ``NOTHING_TO_UNDO`` for an effect that needs no undoing.
        kwargs: Arguments of ``PythonOperator`` (``python_callable``, ``op_args``, ``op_kwargs``, ...).
    """

    template_fields: Sequence[str] = (*PythonOperator.template_fields, *IDEMPOTENCY_TEMPLATE_FIELDS)
    ui_color = "#e8f3e8"

    def __init__(
        self,
        *,
        key: str,
        namespace: str = DEFAULT_NAMESPACE,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        fingerprint_inputs: Any = None,
        business_key: str | None = None,
        integrity_conn_id: str | None = None,
        deferrable: bool | None = None,
        poll_interval: float = 5.0,
        max_wait: float | None = None,
        compensate: Callable[..., Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if compensate is not None and compensate != NOTHING_TO_UNDO and not callable(compensate):
            raise TypeError(
                f"Task {self.task_id!r}: compensate= must be a callable that undoes the effect, for example "
                f"def refund(result, idempotency): ..., or NOTHING_TO_UNDO; got {type(compensate).__name__}."
            )
        self.compensate = compensate
        self._init_idempotency(
            key=key,
            namespace=namespace,
            lease_seconds=lease_seconds,
            fingerprint_inputs=fingerprint_inputs,
            business_key=business_key,
            integrity_conn_id=integrity_conn_id,
            deferrable=default_deferrable() if deferrable is None else deferrable,
            poll_interval=poll_interval,
            max_wait=max_wait,
        )

    def execute(self, context: Context) -> Any:
        """Claim the key, then run the callable, replay the stored result, wait, or refuse."""
        if self.is_async:
            raise AirflowFailException(
                f"Task {self.task_id!r}: idempotent tasks run synchronous callables only; make "
                f"{getattr(self.python_callable, '__name__', 'the callable')} a plain def."
            )
        inputs = {"op_args": list(self.op_args), "op_kwargs": dict(self.op_kwargs)}
        return self.run_guarded(context, inputs, lambda claim: self._run_callable(context, claim))

    def _run_callable(self, context: Context, claim: IdempotencyClaim) -> Any:
        context["idempotency"] = claim.as_dict()  # type: ignore[typeddict-unknown-key]
        return PythonOperator.execute(self, context)
