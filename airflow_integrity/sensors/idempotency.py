"""``IdempotencyKeySensor``: wait until an effect guarded by an idempotency key has happened."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.bases.sensor import PokeReturnValue

from airflow_integrity.compat import AirflowException, AirflowFailException, AirflowSensorTimeout
from airflow_integrity.settings import default_deferrable
from airflow_integrity.store.ledger import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_integrity.store.ledger import LedgerEntry


class IdempotencyKeySensor(BaseSensorOperator):
    """Wait until the work of an idempotency key is completed and return its stored result.

    Use it for a dependency on an effect that must have happened exactly once, wherever it ran (another DAG,
    another run): for example a report that needs ``claim-42`` paid. It fails without retry when the key
    failed permanently (a person must release it first).

    Args:
        key: The idempotency key (templated).
        namespace: Its namespace (templated).
        integrity_conn_id: Connection of the integrity store (default: ``[integrity] conn_id``).
        deferrable: Wait in the triggerer (``IdempotencyKeyTrigger``) instead of occupying a worker slot.
        poll_interval: Seconds between looks at the ledger while deferred (``poke_interval`` otherwise).
        kwargs: Arguments of ``BaseSensorOperator`` (``timeout``, ``poke_interval``, ``mode``, ...).
    """

    template_fields: Sequence[str] = ("key", "namespace")
    ui_color = "#e8f3e8"

    def __init__(
        self,
        *,
        key: str,
        namespace: str = DEFAULT_NAMESPACE,
        integrity_conn_id: str | None = None,
        deferrable: bool | None = None,
        poll_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if deferrable is None:
            deferrable = default_deferrable()
        self.key = key
        self.namespace = namespace
        self.integrity_conn_id = integrity_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval

    def _read(self, *, with_result: bool) -> tuple[LedgerEntry | None, Any]:
        from airflow_integrity.hooks.integrity import IntegrityCheckHook
        from airflow_integrity.store.ledger import State

        with IntegrityCheckHook(integrity_conn_id=self.integrity_conn_id).get_ledger(self.namespace) as ledger:
            entry = ledger.get(self.key)
            done = entry is not None and entry.state is State.COMPLETED
            return entry, ledger.load_result(entry) if (done and with_result and entry) else None

    def _refuse_if_failed(self, entry: LedgerEntry | None) -> None:
        from airflow_integrity.store.ledger import State

        if entry is not None and entry.state is State.FAILED and entry.retryable is False:
            raise AirflowFailException(self._failed_message(entry.error))

    def _failed_message(self, error: object) -> str:
        return (
            f"Idempotency key {self.key!r} (namespace {self.namespace!r}) failed without retry: {error}. It "
            "will not complete until a person fixes the cause and releases it "
            f"(airflow integrity ledger release {self.key!r} --reason ...)."
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Done, with the stored result, when the key is completed."""
        from airflow_integrity.store.ledger import State

        entry, result = self._read(with_result=True)
        self._refuse_if_failed(entry)
        if entry is not None and entry.state is State.COMPLETED:
            return PokeReturnValue(is_done=True, xcom_value=result)
        self.log.info(
            "Idempotency key %r is %s; waiting.", self.key, entry.state.value if entry else "not claimed yet"
        )
        return False

    def execute(self, context: Context) -> Any:
        """Poke (``deferrable=False``) or defer to the triggerer until the key is completed."""
        if not self.deferrable:
            return super().execute(context)
        from airflow_integrity.triggers.idempotency import WAIT_FOR_COMPLETED, IdempotencyKeyTrigger

        self.defer(
            trigger=IdempotencyKeyTrigger(
                key=self.key,
                namespace=self.namespace,
                integrity_conn_id=self.integrity_conn_id,
                wait_for=WAIT_FOR_COMPLETED,
                poll_interval=self.poll_interval,
                timeout=self.timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Return the stored result when the trigger saw the key completed; fail clearly otherwise."""
        from airflow_integrity.store.ledger import State

        status = event.get("status")
        if status == "failed_permanently":
            raise AirflowFailException(self._failed_message(event.get("error")))
        if status == "timeout":
            raise AirflowSensorTimeout(str(event.get("message")))
        if status != "completed":
            raise AirflowException(f"Unexpected event from IdempotencyKeyTrigger for key {self.key!r}: {event}")
        entry, result = self._read(with_result=True)
        if entry is None or entry.state is not State.COMPLETED:
            raise AirflowException(
                f"Idempotency key {self.key!r} was completed but is now "
                f"{entry.state.value if entry else 'gone'} (released meanwhile?); the next try waits again."
            )
        return result
