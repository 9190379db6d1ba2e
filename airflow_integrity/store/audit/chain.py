"""Appending events to the hash chain: durable, gapless and fork-free with any number of writers.

PostgreSQL ("group commit"), one database call per append (procedure ``integrity_audit_append`` of
migration a1): the events are committed to an intake table, a plain insert that runs in parallel
with other writers. Then, under a transaction-scoped advisory lock, every intake row not chained yet
is hashed in order from the head and inserted into the chain with consecutive sequence numbers. A
writer that finds the lock taken waits for its holder in shared mode (all waiters wake together) and
is done if the holder chained its rows, so one chaining serves many writers. Sequence numbers and
hashes are assigned only under the lock: no gap, no fork. Neither commit waits for its WAL flush
while the lock is held; the call ends with a transaction whose commit waits for the flush of the
WAL up to it, which covers both, and concurrent writers share that flush. Which intake rows can
still be unchained is known exactly from the last chaining snapshot (its ``xmax`` and in-progress
transaction ids), so a writer that died after its intake commit is chained by the next append, and
no scan grows with the size of the log. That horizon holds within one PostgreSQL cluster; once the store
has moved to another one (a dump restored there, a logical copy), whose transaction ids are unrelated to
it, the next chaining notices and finds the unchained rows by an exact search, once (migration a2).

SQLite has one writer at a time (``BEGIN IMMEDIATE``): the event is chained in the same transaction.

Either way ``append`` returns once the event is committed, chained and flushed to disk. ``record`` (the
path ``IntegrityCheckHook.record_event`` takes) returns once the event is committed and flushed to disk; on
PostgreSQL it is chained later, in a batch, which costs a fraction of chaining each event on its own. The
batch comes at the latest about a second after the event: a call that meets an intake id that is a
multiple of ``batch``, or that comes a second after its process last chained, chains everything pending; a
daemon thread of the recording process chains what it left unchained ``chain_within`` seconds after
recording it, and its exit handler at exit (:mod:`airflow_integrity.store.audit.tail`). Any ``append``,
:meth:`AuditLog.chain_pending`, ``audit export`` and ``audit checkpoint`` chain everything pending too.

Until it is chained an event is protected as the newest events after the last signed checkpoint are: the
database refuses UPDATE, DELETE and TRUNCATE on the intake table as on the chain, and ``verify`` counts the
pending events and names one altered in place (a row version written by another transaction than the one
that recorded it). Someone who can switch the triggers off could, within that window, delete such an event
or replace it undetectably, as they can rewrite the chain's tail after the newest signed checkpoint.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import text

from airflow_integrity.store.audit.event import (
    GENESIS_HASH,
    AuditChainError,
    AuditEvent,
    AuditEventConflictError,
    AuditEventError,
    AuditRecord,
    AuditStoreError,
    PreparedEvent,
    Recorded,
    chain_hash,
    format_timestamp,
    parse_timestamp,
)
from airflow_integrity.store.audit.schema import (
    CONTENT_COLUMNS,
    EVENT,
    INTAKE,
    RECORD_SELECT,
    field_sql,
    record_from_row,
)
from airflow_integrity.store.audit.tail import PendingTail, existing_tail, pending_tail
from airflow_integrity.store.connections import on_driver_connection, raw_connection

if TYPE_CHECKING:
    from airflow_integrity.store.store import IntegrityStore

T = TypeVar("T")

# Both are defined by migration a1 (the chaining function as replaced by a2): the chain lock is held inside
# the database, for no client round trip.
_APPEND = "CALL integrity_audit_append(%s, NULL)"
_STAMP = "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
# record(): the intake insert alone, one durable statement; chaining is left to batches.
_RECORD = f"""
INSERT INTO {INTAKE} ({", ".join(CONTENT_COLUMNS)})
SELECT {", ".join("u." + c for c in CONTENT_COLUMNS)}
FROM ROWS FROM (json_to_recordset(%s::json) AS (
         event_id text, event_type text, actor text, dag_id text, dag_version text, bundle_version text,
         run_id text, task_id text, map_index int, try_number int, business_key text, details text))
     WITH ORDINALITY AS u({", ".join(CONTENT_COLUMNS)}, ord)
ORDER BY u.ord
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id, id, {_STAMP}
"""
_TRY_CHAIN = "SELECT integrity_audit_chain(false)"
_POSITIONS = "SELECT integrity_audit_positions(%s::bigint[], %s::text[])"
_INTAKE_ROW = f"SELECT {', '.join(CONTENT_COLUMNS)}, id, {_STAMP} FROM {INTAKE} WHERE event_id = %s"
# Per process and store: when record() last had pending events chained.
_last_chained: dict[tuple[str, int], float] = {}
_CHAIN = "SELECT integrity_audit_chain(true)"
_HEAD = f"SELECT seq, hash FROM {EVENT} ORDER BY seq DESC LIMIT 1"
_SQLITE_EXISTING = f"SELECT {RECORD_SELECT} FROM {EVENT} AS e WHERE {field_sql('sqlite', 'event_id')} = ?"
_SQLITE_INSERT = f"INSERT INTO {EVENT} (seq, body, prev_hash, hash) VALUES (?, ?, ?, ?)"


@dataclass(frozen=True)
class ChainHead:
    """The last event of the chain (``seq`` 0 and the genesis hash when the chain is empty)."""

    seq: int
    hash: str


class AuditLog:
    """Append events to a store's audit chain and read its head.

    Args:
        store: A migrated integrity store.
    """

    def __init__(self, store: IntegrityStore) -> None:
        self.store = store

    def append(self, event: AuditEvent) -> AuditRecord:
        """Record one event; return it as stored: committed, chained (``seq``, ``hash``) and on disk.

        Raises:
            AuditEventError: The event is invalid, or its ``event_id`` is recorded with other content.
            StoreUnavailableError: The store cannot be reached. Whether the event was recorded is then
                unknown: append the same event (same ``event_id``) again, which records it at most once.
        """
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Record several events atomically, consecutively and in the given order; return them as stored."""
        prepared = _prepare(events)
        if not prepared:
            return []
        if self.store.backend == "postgresql":
            return _append_postgres(self.store, prepared)
        return _append_sqlite(self.store, prepared)

    def record(self, event: AuditEvent, *, batch: int = 64, chain_within: float | None = 1.0) -> Recorded:
        """Record one event durably; it is chained later, in a batch (see :meth:`record_many`)."""
        return self.record_many([event], batch=batch, chain_within=chain_within)[0]

    def record_many(
        self, events: Sequence[AuditEvent], *, batch: int = 64, chain_within: float | None = 1.0
    ) -> list[Recorded]:
        """Record events atomically and durably (committed and on disk when this returns); chain them later.

        On PostgreSQL this is one insert, as cheap as a plain one. The events join the chain in a batch: when
        an intake id reaches a multiple of ``batch``, or a second after this process last had events chained,
        this call chains everything pending if nobody else is chaining. Otherwise this process's background
        thread chains them ``chain_within`` seconds later (``None``: leave them to a later call), unless an
        ``append``, ``record`` or :meth:`chain_pending` of any process chains them first. On SQLite every event
        is chained at once (as ``append``).

        Raises:
            AuditEventError: An event is invalid, or its ``event_id`` is recorded with other content.
        """
        prepared = _prepare(events)
        if not prepared:
            return []
        if self.store.backend != "postgresql":
            return [r.receipt() for r in _append_sqlite(self.store, prepared)]
        inserted, chained_at, places = _with_connection(
            self.store, lambda conn: _record_intake(self.store, conn, prepared, batch)
        )
        tail = _tail(self.store)
        if chained_at is not None:
            tail.chained(chained_at)
        elif chain_within is not None:
            tail.soon(chain_within)
        receipts = []
        for event in prepared:
            seq, prev_hash, hash_ = places.get(event.event_id, (None, None, None))
            stamp = parse_timestamp(inserted[event.event_id][1])
            receipts.append(Recorded(event.event_id, stamp, seq, prev_hash, hash_))
        return receipts

    def head(self) -> ChainHead:
        """The chain's last event."""
        with self.store.read() as conn:
            row = conn.execute(text(_HEAD)).first()
        return ChainHead(row[0], row[1]) if row else ChainHead(0, GENESIS_HASH)

    def chain_pending(self) -> int:
        """Chain every event recorded but not chained yet (left by ``record``, or by a writer that died
        between recording and chaining); return how many. A no-op on SQLite.
        """
        if self.store.backend != "postgresql":
            return 0
        started = time.monotonic()
        chained = int(_call(self.store, _CHAIN, None)[0])
        _chained_everything(self.store, started)
        return chained


def _prepare(events: Sequence[AuditEvent]) -> list[PreparedEvent]:
    prepared = [event.prepare() for event in events]
    ids = [p.event_id for p in prepared]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise AuditEventError(f"Audit event_id {duplicate} appears twice in one call; ids must be unique.")
    return prepared


def _payload(prepared: list[PreparedEvent]) -> str:
    return json.dumps([p.columns() for p in prepared])


def _tail(store: IntegrityStore) -> PendingTail:
    key = store.location.key
    return existing_tail(key) or pending_tail(key, AuditLog(store).chain_pending, store.location.display)


def _chained_everything(store: IntegrityStore, started: float) -> None:
    """A chaining that began at ``started`` took everything this process had recorded before."""
    tail = existing_tail(store.location.key)
    if tail is not None:
        tail.chained(started)


def _record_intake(
    store: IntegrityStore, conn: Any, prepared: list[PreparedEvent], batch: int
) -> tuple[dict[str, Any], float | None, dict[str, tuple[int, str, str]]]:
    """Insert into the intake table (one durable statement); chain pending events when a batch is due.

    Returns the stored ``event_id -> (intake id, recorded_at)``, when this call chained if it did, and the
    place in the chain (``seq, prev_hash, hash``) of each event that is chained by then.
    """
    inserted = {row[0]: row[1:] for row in conn.execute(_RECORD, (_payload(prepared),)).fetchall()}
    for event in prepared:
        if event.event_id not in inserted:
            # Recorded by an earlier call (a retry): the same event, or refuse.
            row = conn.execute(_INTAKE_ROW, (event.event_id,)).fetchone()
            if list(row[: len(CONTENT_COLUMNS)]) != [event.columns()[name] for name in CONTENT_COLUMNS]:
                raise AuditEventConflictError(
                    f"Audit event_id {event.event_id} is already recorded with different content; give a new "
                    "event a new id."
                )
            inserted[event.event_id] = row[len(CONTENT_COLUMNS) :]
    key = (store.location.key, os.getpid())
    now = time.monotonic()
    if any(row[0] % batch == 0 for row in inserted.values()) or now - _last_chained.get(key, 0.0) > 1.0:
        _last_chained[key] = now
        if conn.execute(_TRY_CHAIN).fetchone()[0] is not None:
            ids = [row[0] for row in inserted.values()]
            places = json.loads(conn.execute(_POSITIONS, (ids, [])).fetchone()[0] or "[]")
            return inserted, now, {p[0]: (p[4], p[5], p[6]) for p in places if p[4] is not None}
    return inserted, None, {}


def _call_procedure(store: IntegrityStore, query: str, params: tuple[Any, ...]) -> dict[str, list[Any]]:
    """Run an append procedure; return ``event_id -> [intake id, recorded_at, new, seq, prev_hash, hash]``."""
    result = _call(store, query, params)[0]
    return {row[0]: row[1:] for row in json.loads(result or "[]")}


def _check_recorded(store: IntegrityStore, event: PreparedEvent, seq: int | None) -> None:
    """A retried event: compare it with what is stored (the chain's copy, or the intake row if not chained)."""
    if seq is not None:
        row = _call(store, f"SELECT {RECORD_SELECT} FROM {EVENT} AS e WHERE e.seq = %s", (seq,))
        _check_same(event, record_from_row(*row))
        return
    columns = ", ".join(CONTENT_COLUMNS)
    row = _call(store, f"SELECT {columns} FROM {INTAKE} WHERE event_id = %s", (event.event_id,))
    if list(row) != [event.columns()[name] for name in CONTENT_COLUMNS]:
        raise AuditEventConflictError(
            f"Audit event_id {event.event_id} is already recorded with different content; give a new event "
            "a new id."
        )


def _check_same(event: PreparedEvent, stored: AuditRecord) -> None:
    """Accept a retried append of an already recorded event; refuse a different event under its id."""
    columns = event.columns()
    columns["details"] = json.loads(columns["details"])
    if any(getattr(stored, name) != value for name, value in columns.items()):
        raise AuditEventConflictError(
            f"Audit event_id {event.event_id} is already recorded (seq {stored.seq}) with different content; "
            "give a new event a new id."
        )


def _record(prepared: PreparedEvent, recorded_at: datetime, seq: int, prev_hash: str, hash_: str) -> AuditRecord:
    columns = prepared.columns()
    columns["details"] = json.loads(prepared.details_json)
    return AuditRecord(seq=seq, recorded_at=recorded_at, prev_hash=prev_hash, hash=hash_, **columns)


def _append_sqlite(store: IntegrityStore, prepared: list[PreparedEvent]) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    with raw_connection(store) as conn:
        try:
            # BEGIN IMMEDIATE takes the write lock at once: the head cannot move under us.
            conn.execute("BEGIN IMMEDIATE")
            head = conn.execute(_HEAD).fetchone()
            seq, prev = (head[0], head[1]) if head else (0, GENESIS_HASH)
            for event in prepared:
                existing = conn.execute(_SQLITE_EXISTING, (event.event_id,)).fetchone()
                if existing is not None:
                    stored = record_from_row(*existing)
                    _check_same(event, stored)
                    records.append(stored)
                    continue
                now = _sqlite_now(conn)
                seq += 1
                body = event.body(format_timestamp(now))
                digest = chain_hash(prev, seq, body.encode("utf-8"))
                conn.execute(_SQLITE_INSERT, (seq, body, prev, digest))
                records.append(_record(event, now, seq, prev, digest))
                prev = digest
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if "locked" in str(exc) or "unable to open" in str(exc):
                raise store._unavailable(exc) from exc
            if isinstance(exc, sqlite3.Error):
                raise _refused(store, exc) from exc
            raise
    return records


def _sqlite_now(conn: Any) -> datetime:
    """The store's clock, SQLite's ``'now'`` (to the millisecond): the trail's times never come from the code
    that writes the event."""
    stamp = conn.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')").fetchone()[0]
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def _refused(store: IntegrityStore, exc: BaseException) -> AuditStoreError:
    reason = str(exc).strip().splitlines()
    return AuditStoreError(
        f"The integrity store ({store.location.display}) refused an audit statement: "
        f"{reason[0] if reason else type(exc).__name__}. Check the store with `airflow integrity db check` and "
        "`airflow integrity audit verify`."
    )


def _append_postgres(store: IntegrityStore, prepared: list[PreparedEvent]) -> list[AuditRecord]:
    started = time.monotonic()
    stored = _call_procedure(store, _APPEND, (_payload(prepared),))
    _chained_everything(store, started)
    records = []
    for event in prepared:
        row = stored.get(event.event_id)
        if row is None or row[3] is None:
            raise AuditChainError(
                f"Audit event {event.event_id} was not chained: the store's integrity_audit_append procedure "
                "does not match this airflow-integrity. Run `airflow integrity db migrate`."
            )
        _, stamp, new, seq, prev, digest = row
        if not new:
            _check_recorded(store, event, seq)
        records.append(_record(event, parse_timestamp(stamp), seq, prev, digest))
    return records


# Appends hold no connection between calls but reuse idle ones, one per thread at a time: a pooled checkout
# (PostgreSQL, with its liveness ping) or a new connection (SQLite) costs as much as the append itself. A
# stale PostgreSQL connection shows when the append fails; the append is then retried once on a new
# connection (safe: appending an event id twice records it once).


def _call(store: IntegrityStore, query: str, params: tuple[Any, ...] | None) -> Any:
    """Run one statement and return its first row (see :func:`_with_connection`)."""
    return _with_connection(store, lambda conn: conn.execute(query, params).fetchone())


def _with_connection(store: IntegrityStore, work: Callable[[Any], T]) -> T:
    """Run ``work`` on a driver connection (:func:`on_driver_connection`). Driver errors leave as the store's own:
    unavailable, or refused."""
    import psycopg

    try:
        return on_driver_connection(store, work)
    except psycopg.errors.DataError as exc:
        # The database found a value of the event it cannot store: the event's fault, not the store's.
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise AuditEventError(f"The integrity store refused the audit event's data: {reason}") from exc
    except psycopg.Error as exc:
        raise _refused(store, exc) from exc
