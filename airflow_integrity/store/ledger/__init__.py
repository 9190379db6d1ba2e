"""The idempotency ledger: claims, leases and fencing (``ledger``), its entries, outcomes and errors
(``entries``), the encoding of results and fingerprints (``codec``), its statements (``sql``, ``rows``), the
lease heartbeat (``heartbeat``) and the defaults operators share (``defaults``).

Importing the package loads none of its modules; each name below loads its module on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_integrity.lazy import lazy_exports

if TYPE_CHECKING:
    from airflow_integrity.store.ledger.defaults import DEFAULT_LEASE_SECONDS, DEFAULT_NAMESPACE
    from airflow_integrity.store.ledger.entries import ClaimOutcome, ClaimStatus, LedgerEntry, State
    from airflow_integrity.store.ledger.ledger import IdempotencyLedger

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_NAMESPACE",
    "ClaimOutcome",
    "ClaimStatus",
    "IdempotencyLedger",
    "LedgerEntry",
    "State",
]

_MODULES = {
    "DEFAULT_LEASE_SECONDS": "defaults",
    "DEFAULT_NAMESPACE": "defaults",
    "ClaimOutcome": "entries",
    "ClaimStatus": "entries",
    "IdempotencyLedger": "ledger",
    "LedgerEntry": "entries",
    "State": "entries",
}

__getattr__, __dir__ = lazy_exports(globals(), _MODULES)
