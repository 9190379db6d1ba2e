"""Defaults of the idempotency ledger, in a module light enough for operator modules to import at parse time."""

from __future__ import annotations

# The namespace of keys that name none.
DEFAULT_NAMESPACE = "default"
# A killed worker's retry takes the key over at most this long after the last heartbeat.
DEFAULT_LEASE_SECONDS = 60.0
