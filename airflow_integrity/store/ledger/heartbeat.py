"""Keep a ledger lease alive while the work runs, and notice when it is lost."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from airflow_integrity.store.errors import StoreError
from airflow_integrity.store.ledger.entries import Lease, StaleHolderError
from airflow_integrity.store.ledger.ledger import IdempotencyLedger

log = logging.getLogger(__name__)


class LeaseHeartbeat:
    """Renew a lease every third of its length in a background thread.

    When a renewal is refused (the lease was taken over, or the key settled or released) the heartbeat
    stops, records the ``StaleHolderError`` and calls ``on_lost``; leaving the ``with`` block then raises
    it, so that work which lost its lease is never completed. A store that cannot be reached is retried
    on the next beat: only the fencing token decides whether this holder may still complete.

    Args:
        ledger: The ledger that granted the lease.
        lease: The lease to keep alive.
        interval: Seconds between renewals (default: a third of the lease).
        on_lost: Called once, in the heartbeat thread, with the refusal when the lease is lost (for example
            to interrupt the work).
        granted_at: When the claim that granted the lease was asked for (``time.monotonic()``; default: now).
    """

    def __init__(
        self,
        ledger: IdempotencyLedger,
        lease: Lease,
        *,
        interval: float | None = None,
        on_lost: Callable[[StaleHolderError], None] | None = None,
        granted_at: float | None = None,
    ) -> None:
        self.ledger = ledger
        self.interval = interval if interval is not None else lease.lease_seconds / 3
        self.on_lost = on_lost
        self._lease = lease
        self._lost: StaleHolderError | None = None
        self._settled = False
        self._last_error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # When (time.monotonic()) the lease runs out at the latest, counted from before its last renewal was
        # asked for, so that it never lies after the expiry the database set.
        self._held_until = (time.monotonic() if granted_at is None else granted_at) + lease.lease_seconds
        self.renewals = 0

    @property
    def lease(self) -> Lease:
        """The lease with its latest expiry."""
        return self._lease

    @property
    def lost(self) -> StaleHolderError | None:
        """The refusal that ended the lease, or ``None`` while it is held."""
        return self._lost

    def holds(self, margin: float = 0.0) -> bool:
        """Whether the lease is still held ``margin`` seconds from now, by this process's clock (a lease that
        was taken over is not; one whose renewals failed runs out a lease length after the last success)."""
        return self._lost is None and time.monotonic() + margin < self._held_until

    @property
    def last_error(self) -> BaseException | None:
        """The latest store error a renewal met (cleared by the next successful renewal)."""
        return self._last_error

    def start(self) -> LeaseHeartbeat:
        """Start renewing in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("This heartbeat has already been started; create a new one per lease.")
        self._thread = threading.Thread(
            target=self._run, name=f"ledger-heartbeat-{self._lease.key[:40]}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing and wait for the thread to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def raise_if_lost(self) -> None:
        """Raise the ``StaleHolderError`` that ended the lease, if any (never once the key was settled)."""
        if self._lost is not None and not self._settled:
            raise self._lost

    def settle(self) -> None:
        """The holder settled the key (completed or failed it): a renewal refused from now on is expected."""
        self._settled = True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            asked = time.monotonic()
            try:
                self._lease = self.ledger.renew(self._lease)
                self._held_until = asked + self._lease.lease_seconds
            except StaleHolderError as refusal:
                if self._settled:
                    return
                self._lost = refusal
                log.error("%s", refusal)
                if self.on_lost is not None:
                    self.on_lost(refusal)
                return
            except StoreError as exc:
                self._last_error = exc
                log.warning(
                    "Could not renew the lease of idempotency key %r (will retry): %s", self._lease.key, exc
                )
                continue
            self._last_error = None
            self.renewals += 1

    def __enter__(self) -> LeaseHeartbeat:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc_type is None:
            self.raise_if_lost()
