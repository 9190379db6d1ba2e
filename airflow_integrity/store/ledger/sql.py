"""The ledger's SQL, one text per operation, with the two dialects differing only in how they read the clock.

Every time is the database's: ``now()`` on PostgreSQL (one clock for every host), SQLite's own ``'now'``
(UTC text ``YYYY-MM-DD HH:MM:SS.SSS``, which sorts like the time it names) on the one machine that holds
the SQLite file. A lease is therefore never compared against a worker's local clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

ENTRY_COLUMNS = (
    "id, namespace, idempotency_key, fingerprint, state, retryable, holder, origin, previous_state, "
    "previous_holder, fencing_token, lease_seconds, lease_expires_at, attempts, result_json, result_ref, "
    "result_size, result_sha256, error, last_event, last_person, last_reason, created_at, updated_at, "
    "completed_at, expires_at, fingerprint_scheme"
)
HISTORY_COLUMNS = (
    "id, event, at, state, previous_state, fencing_token, fingerprint, holder, previous_holder, person, "
    "reason, error, result_sha256, result_size, details"
)
# What a winning claim returns; the rest of its entry is known to the claimant.
CLAIM_COLUMNS = (
    "fencing_token, lease_expires_at, last_event, previous_state, previous_holder, origin, attempts, "
    "created_at, updated_at, expires_at, fingerprint_scheme"
)
_WHERE_KEY = "namespace = :namespace AND idempotency_key = :key"
_WHERE_HELD = f"{_WHERE_KEY} AND fencing_token = :token AND state = 'in_progress'"

# A key starts afresh (new fingerprint, origin and expiry) when a person released it or it expired; an
# expired key that a live holder still works on is not fresh.
_FRESH = (
    "(l.state = 'released' OR (l.expires_at IS NOT NULL AND l.expires_at <= {now} "
    "AND NOT (l.state = 'in_progress' AND l.lease_expires_at > {now})))"
)
_CLAIMABLE = (
    "{fresh} OR (l.fingerprint = excluded.fingerprint AND ((l.state = 'failed' AND l.retryable) "
    "OR (l.state = 'in_progress' AND l.lease_expires_at <= {now})))"
)

_CLAIM = """
INSERT INTO integrity_ledger AS l (namespace, idempotency_key, fingerprint, state, holder, origin, fencing_token,
    lease_seconds, lease_expires_at, attempts, created_at, updated_at, expires_at, last_event, fingerprint_scheme)
VALUES (:namespace, :key, :fingerprint, 'in_progress', :holder, :holder, 1, :lease_seconds, {lease_until}, 1,
    {now}, {now}, {ttl_until}, 'claimed', :scheme)
ON CONFLICT (namespace, idempotency_key) DO UPDATE SET
    state = 'in_progress', retryable = NULL, previous_state = l.state, previous_holder = l.holder,
    holder = excluded.holder, fencing_token = l.fencing_token + 1, lease_seconds = excluded.lease_seconds,
    lease_expires_at = excluded.lease_expires_at, attempts = l.attempts + 1, updated_at = excluded.updated_at,
    result_json = NULL, result_ref = NULL, result_size = NULL, result_sha256 = NULL, completed_at = NULL,
    error = NULL, last_person = NULL, last_reason = NULL, fingerprint = excluded.fingerprint,
    origin = CASE WHEN {fresh} THEN excluded.origin ELSE l.origin END,
    expires_at = CASE WHEN {fresh} THEN excluded.expires_at ELSE l.expires_at END,
    fingerprint_scheme = CASE WHEN {fresh} THEN excluded.fingerprint_scheme ELSE l.fingerprint_scheme END,
    last_event = CASE WHEN l.state = 'in_progress' THEN 'takeover' ELSE 'claimed' END
WHERE {claimable}
RETURNING {claim_columns}
"""

_COMPLETE = """
UPDATE integrity_ledger SET state = 'completed', result_json = :result_json, result_ref = :result_ref,
    result_size = :result_size, result_sha256 = :result_sha256, completed_at = {now}, updated_at = {now},
    lease_expires_at = NULL, last_event = 'completed'
WHERE {held}
RETURNING completed_at
"""

_FAIL = """
UPDATE integrity_ledger SET state = 'failed', retryable = :retryable, error = :error, updated_at = {now},
    lease_expires_at = NULL, last_event = 'failed'
WHERE {held}
RETURNING updated_at
"""

# A renewal is not a transition: it leaves updated_at alone and so writes no history.
_RENEW = """
UPDATE integrity_ledger SET lease_expires_at = {lease_until}
WHERE {held}
RETURNING lease_expires_at
"""

_RELEASE = """
UPDATE integrity_ledger SET state = 'released', retryable = NULL, previous_state = state,
    previous_holder = holder, lease_expires_at = NULL, last_event = 'released', last_person = :person,
    last_reason = :reason, updated_at = {now}
WHERE {where_key} AND (state IN ('completed', 'failed')
    OR (state = 'in_progress' AND lease_expires_at <= {now}))
RETURNING fencing_token, updated_at, previous_state, holder, origin
"""

_SELECT = "SELECT {columns}, {now} AS db_now FROM integrity_ledger WHERE {where_key}"

_NOTE = """
INSERT INTO integrity_ledger_history (ledger_id, namespace, idempotency_key, event, at, state, fencing_token,
    fingerprint, holder, result_sha256, result_size, details)
SELECT id, namespace, idempotency_key, :event, {now}, state, fencing_token, :fingerprint, :holder,
    result_sha256, result_size, :details
FROM integrity_ledger WHERE {where_key}
"""

_NOTE_THROUGH_OWNER = "SELECT integrity_ledger_note(:namespace, :key, :event, :fingerprint, :holder, :details)"

_HISTORY = "SELECT {columns} FROM integrity_ledger_history WHERE {where_key} ORDER BY id"

_INSERT_BLOB = """
INSERT INTO integrity_ledger_blob (namespace, idempotency_key, fencing_token, sha256, size, body, created_at)
VALUES (:namespace, :key, :token, :sha256, :size, :body, {now})
RETURNING id
"""

_SELECT_BLOB = "SELECT sha256, size, body FROM integrity_ledger_blob WHERE id = :ref"


@dataclass(frozen=True)
class LedgerSql:
    """The ledger's statements for one dialect (``"postgresql"`` or ``"sqlite"``), in its driver's parameter
    style (``%(name)s`` for psycopg, ``:name`` for sqlite3)."""

    claim: str
    complete: str
    fail: str
    renew: str
    release: str
    select: str
    note: str
    history: str
    insert_blob: str
    select_blob: str

    @classmethod
    def for_dialect(cls, dialect: str) -> LedgerSql:
        """Build the statements with the clock expressions of ``dialect``."""
        if dialect == "postgresql":
            now = "now()"
            # Durations are bound as seconds (double precision); NULL yields NULL.
            lease_until = "now() + make_interval(secs => CAST(:lease_seconds AS double precision))"
            ttl_until = "now() + make_interval(secs => CAST(:ttl_seconds AS double precision))"
        else:
            now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
            # Durations are bound as SQLite date modifiers such as '+30.000 seconds'; NULL yields NULL.
            lease_until = "strftime('%Y-%m-%d %H:%M:%f', 'now', :lease_modifier)"
            ttl_until = "strftime('%Y-%m-%d %H:%M:%f', 'now', :ttl_modifier)"
        fresh = _FRESH.format(now=now)
        claimable = _CLAIMABLE.format(fresh=fresh, now=now)
        statements = cls(
            claim=_CLAIM.format(
                now=now,
                lease_until=lease_until,
                ttl_until=ttl_until,
                fresh=fresh,
                claimable=claimable,
                claim_columns=CLAIM_COLUMNS,
            ),
            complete=_COMPLETE.format(now=now, held=_WHERE_HELD),
            fail=_FAIL.format(now=now, held=_WHERE_HELD),
            renew=_RENEW.format(lease_until=lease_until, held=_WHERE_HELD),
            release=_RELEASE.format(now=now, where_key=_WHERE_KEY),
            select=_SELECT.format(columns=ENTRY_COLUMNS, now=now, where_key=_WHERE_KEY),
            note=_NOTE.format(now=now, where_key=_WHERE_KEY),
            history=_HISTORY.format(columns=HISTORY_COLUMNS, where_key=_WHERE_KEY),
            insert_blob=_INSERT_BLOB.format(now=now),
            select_blob=_SELECT_BLOB,
        )
        if dialect == "postgresql":
            # The history is written by a function of the store's owner (migration l2), so that the role the
            # components connect as needs no right to write it directly.
            statements = replace(statements, note=_NOTE_THROUGH_OWNER)
            statements = cls(**{name: _pyformat(sql) for name, sql in statements.__dict__.items()})
        return statements


def _pyformat(sql: str) -> str:
    """``:name`` placeholders as psycopg's ``%(name)s`` (the statements contain no other colon or percent)."""
    return re.sub(r"(?<![:\w]):([a-z_][a-z_0-9]*)", r"%(\1)s", sql)
