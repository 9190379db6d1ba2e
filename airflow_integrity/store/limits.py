"""Limits the ledger and the audit trail share, in a module light enough for DAG files to import."""

from __future__ import annotations

import math

# An idempotency key is the business key of its audit events: one limit for both, so that every key the
# ledger accepts can be recorded.
MAX_BUSINESS_KEY_LENGTH = 512
# The longest lease a claim may take: a killed worker's key is blocked this long at most.
MAX_LEASE_SECONDS = 7 * 24 * 3600.0
# The longest time to live of a key (about ten years).
MAX_TTL_SECONDS = 3650 * 24 * 3600.0


def duration_problem(value: object, maximum: float) -> str | None:
    """What is wrong with ``value`` as a number of seconds in ``(0, maximum]``, or ``None`` when it is fine."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"is a {type(value).__name__}, not a number of seconds"
    if not math.isfinite(value) or value <= 0:
        return "is not a positive, finite number of seconds"
    if value > maximum:
        return f"is longer than the limit of {maximum:,.0f} seconds"
    return None
