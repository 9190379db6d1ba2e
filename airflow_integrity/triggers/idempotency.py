"""``IdempotencyKeyTrigger``: wait in the triggerer until an idempotency key settles or is free to claim."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_integrity.store.ledger import DEFAULT_NAMESPACE, LedgerEntry, State

WAIT_FOR_COMPLETED = "completed"
WAIT_FOR_FREE = "free"
_WAIT_FOR = (WAIT_FOR_COMPLETED, WAIT_FOR_FREE)


class IdempotencyKeyTrigger(BaseTrigger):
    """Poll the idempotency ledger until a key reaches the awaited state, then fire one event.

    ``wait_for="completed"`` (the sensor) fires ``{"status": "completed", ...}`` when the key's work is
    recorded as done, or ``{"status": "failed_permanently", ...}`` when it failed without retry.
    ``wait_for="free"`` (an idempotent operator waiting for another holder) fires ``{"status": "free", ...}``
    as soon as no live holder works on the key any more (completed, failed, released, or its lease expired);
    the operator then claims again. With ``timeout``, ``{"status": "timeout", ...}`` fires when it elapses.
    Events carry the key's state and fencing token, never its stored result.

    Args:
        key: The idempotency key.
        namespace: Its namespace.
        integrity_conn_id: Connection of the integrity store (default: ``[integrity] conn_id``).
        wait_for: ``"completed"`` or ``"free"``.
        poll_interval: Seconds between looks at the ledger.
        timeout: Seconds after which a ``timeout`` event fires (``None``: wait indefinitely).
    """

    def __init__(
        self,
        *,
        key: str,
        namespace: str = DEFAULT_NAMESPACE,
        integrity_conn_id: str | None = None,
        wait_for: str = WAIT_FOR_COMPLETED,
        poll_interval: float = 5.0,
        timeout: float | None = None,
    ) -> None:
        super().__init__()
        if wait_for not in _WAIT_FOR:
            raise ValueError(f"wait_for={wait_for!r} is not one of {_WAIT_FOR}.")
        self.key = key
        self.namespace = namespace
        self.integrity_conn_id = integrity_conn_id
        self.wait_for = wait_for
        self.poll_interval = poll_interval
        self.timeout = timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the keyword arguments that rebuild this trigger in the triggerer."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "key": self.key,
                "namespace": self.namespace,
                "integrity_conn_id": self.integrity_conn_id,
                "wait_for": self.wait_for,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
            },
        )

    def _look(self) -> LedgerEntry | None:
        """Read the key's entry (blocking; run in a worker thread)."""
        from airflow_integrity.hooks.integrity import IntegrityCheckHook

        hook = IntegrityCheckHook(integrity_conn_id=self.integrity_conn_id)
        with hook.get_ledger(self.namespace) as ledger:
            return ledger.get(self.key)

    def _base(self, status: str, entry: LedgerEntry | None) -> dict[str, Any]:
        return {
            "status": status,
            "key": self.key,
            "namespace": self.namespace,
            "state": entry.state.value if entry else None,
            "fencing_token": entry.fencing_token if entry else None,
        }

    def decide(self, entry: LedgerEntry | None, now: dt.datetime) -> dict[str, Any] | None:
        """The event payload ``entry`` warrants at ``now`` (UTC), or ``None`` to keep waiting."""
        if entry is not None and entry.state is State.FAILED and entry.retryable is False:
            return {**self._base("failed_permanently", entry), "error": entry.error}
        if self.wait_for == WAIT_FOR_COMPLETED:
            if entry is not None and entry.state is State.COMPLETED:
                return {
                    **self._base("completed", entry),
                    "result_sha256": entry.result_sha256,
                    "completed_at": entry.completed_at.isoformat() if entry.completed_at else None,
                }
            return None
        held = (
            entry is not None
            and entry.state is State.IN_PROGRESS
            and entry.lease_expires_at is not None
            and entry.lease_expires_at > now
        )
        return None if held else self._base("free", entry)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the awaited state (or the timeout), then yield exactly one event."""
        from airflow_integrity.store.errors import StoreUnavailableError

        loop = asyncio.get_running_loop()
        deadline = None if self.timeout is None else loop.time() + self.timeout
        entry: LedgerEntry | None = None
        while True:
            try:
                entry = await asyncio.to_thread(self._look)
            except StoreUnavailableError as exc:
                self.log.warning("Cannot read idempotency key %r yet (will retry): %s", self.key, exc)
            else:
                payload = self.decide(entry, dt.datetime.now(dt.UTC))
                if payload is not None:
                    yield TriggerEvent(payload)
                    return
            if deadline is not None and loop.time() >= deadline:
                state = entry.state.value if entry else "never claimed"
                yield TriggerEvent(
                    {
                        **self._base("timeout", entry),
                        "message": (
                            f"Idempotency key {self.key!r} (namespace {self.namespace!r}) did not become "
                            f"{self.wait_for} within {self.timeout:g} s; it is {state}."
                        ),
                    }
                )
                return
            await asyncio.sleep(self.poll_interval)
