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
no scan grows with the size of the log.

SQLite has one writer at a time (``BEGIN IMMEDIATE``): the event is chained in the same transaction.

Either way ``append`` returns once the event is committed, chained and flushed to disk.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from airflow_integrity.store.audit import (
    GENESIS_HASH,
    AuditChainError,
    AuditEvent,
    AuditEventError,
    AuditRecord,
    PreparedEvent,
    chain_hash,
    format_timestamp,
    parse_timestamp,
)
from airflow_integrity.store.audit_schema import EVENT, RECORD_SELECT, record_from_row

if TYPE_CHECKING:
    from airflow_integrity.store.store import IntegrityStore

# Both are defined by migration a1: the chain lock is held inside the database, for no client round trip.
_APPEND = "CALL integrity_audit_append(%s, NULL)"
_CHAIN = "SELECT integrity_audit_chain(true)"
_HEAD = f"SELECT seq, hash FROM {EVENT} ORDER BY seq DESC LIMIT 1"
_SQLITE_EXISTING = text(f"SELECT {RECORD_SELECT} FROM {EVENT} AS e WHERE e.event_id = :event_id")
_SQLITE_INSERT = text(f"INSERT INTO {EVENT} (seq, body, prev_hash, hash) VALUES (:seq, :body, :prev_hash, :hash)")


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
        prepared = [event.prepare() for event in events]
        ids = [p.event_id for p in prepared]
        if len(set(ids)) != len(ids):
            duplicate = next(i for i in ids if ids.count(i) > 1)
            raise AuditEventError(f"Audit event_id {duplicate} appears twice in one append; ids must be unique.")
        if not prepared:
            return []
        if self.store.backend == "postgresql":
            return _append_postgres(self.store, prepared)
        return _append_sqlite(self.store, prepared)

    def head(self) -> ChainHead:
        """The chain's last event."""
        with self.store.read() as conn:
            row = conn.execute(text(_HEAD)).first()
        return ChainHead(row[0], row[1]) if row else ChainHead(0, GENESIS_HASH)

    def chain_pending(self) -> int:
        """Chain events whose writer died between recording and chaining them; return how many.

        Every append does this as well; call it to catch up without appending. A no-op on SQLite.
        """
        if self.store.backend != "postgresql":
            return 0
        return int(_call(self.store, _CHAIN, None)[0])


def _check_same(event: PreparedEvent, stored: AuditRecord) -> None:
    """Accept a retried append of an already recorded event; refuse a different event under its id."""
    columns = event.columns()
    columns["details"] = json.loads(columns["details"])
    if any(getattr(stored, name) != value for name, value in columns.items()):
        raise AuditEventError(
            f"Audit event_id {event.event_id} is already recorded (seq {stored.seq}) with different content; "
            "give a new event a new id."
        )


def _record(prepared: PreparedEvent, recorded_at: datetime, seq: int, prev_hash: str, hash_: str) -> AuditRecord:
    columns = prepared.columns()
    columns["details"] = json.loads(prepared.details_json)
    return AuditRecord(seq=seq, recorded_at=recorded_at, prev_hash=prev_hash, hash=hash_, **columns)


def _append_sqlite(store: IntegrityStore, prepared: list[PreparedEvent]) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    with store.begin() as conn:
        # The first statement takes the write lock (BEGIN IMMEDIATE): the head cannot move under us.
        head = conn.execute(text(_HEAD)).first()
        seq, prev = (head[0], head[1]) if head else (0, GENESIS_HASH)
        for event in prepared:
            existing = conn.execute(_SQLITE_EXISTING, {"event_id": event.event_id}).first()
            if existing is not None:
                stored = record_from_row(*existing)
                _check_same(event, stored)
                records.append(stored)
                continue
            now = datetime.now(timezone.utc)
            seq += 1
            body = event.body(format_timestamp(now))
            digest = chain_hash(prev, seq, body.encode("utf-8"))
            conn.execute(_SQLITE_INSERT, {"seq": seq, "body": body, "prev_hash": prev, "hash": digest})
            records.append(_record(event, now, seq, prev, digest))
            prev = digest
    return records


def _append_postgres(store: IntegrityStore, prepared: list[PreparedEvent]) -> list[AuditRecord]:
    payload = json.dumps([p.columns() for p in prepared])
    result = _call(store, _APPEND, (payload,))[0]
    stored = {row[0]: row[1:] for row in json.loads(result or "[]")}
    records = []
    for event in prepared:
        _, stamp, new, seq, prev, digest = stored.get(event.event_id, (None,) * 6)
        if seq is None:
            raise AuditChainError(
                f"Audit event {event.event_id} was not chained: the store's integrity_audit_append procedure "
                "does not match this airflow-integrity. Run `airflow integrity db migrate`."
            )
        record = _record(event, parse_timestamp(stamp), seq, prev, digest)
        if not new:
            # Recorded by an earlier call (a retry): the same event, or refuse.
            row = _call(store, f"SELECT {RECORD_SELECT} FROM {EVENT} AS e WHERE e.seq = %s", (seq,))
            record = record_from_row(*row)
            _check_same(event, record)
        records.append(record)
    return records


# Appends hold no connection between calls but reuse idle ones: a pool checkout with its liveness ping
# costs as much client time as the append. A stale connection shows when the append fails; the append
# is then retried once on a new connection (safe: appending an event id twice records it once).
_idle: dict[tuple[str, int], list[Any]] = {}
_keys: weakref.WeakKeyDictionary[IntegrityStore, str] = weakref.WeakKeyDictionary()
_idle_lock = threading.Lock()
_MAX_IDLE = 4


def _store_key(store: IntegrityStore) -> str:
    key = _keys.get(store)
    if key is None:
        key = _keys[store] = store.location.url.render_as_string(hide_password=False)
    return key


def _connect(store: IntegrityStore) -> Any:
    import psycopg

    conninfo = store.location.url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise store._unavailable(exc) from exc


@contextmanager
def _connection(store: IntegrityStore) -> Iterator[Any]:
    """An autocommit psycopg connection to the store, returned to this process's idle list if healthy."""
    import psycopg

    key = (_store_key(store), os.getpid())
    with _idle_lock:
        idle = _idle.setdefault(key, [])
        conn = idle.pop() if idle else None
    if conn is None:
        conn = _connect(store)
    try:
        yield conn
    finally:
        healthy = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with _idle_lock:
            if healthy and len(idle) < _MAX_IDLE and os.getpid() == key[1]:
                idle.append(conn)
                conn = None
        if conn is not None:
            conn.close()


def close_connections() -> None:
    """Close this process's idle audit connections (tests and shutdown)."""
    with _idle_lock:
        connections = [conn for idle in _idle.values() for conn in idle]
        _idle.clear()
    for conn in connections:
        conn.close()


def _forget_connections_after_fork() -> None:
    # The parent's connections are not ours; psycopg does not close them when collected in a child.
    _idle.clear()


os.register_at_fork(after_in_child=_forget_connections_after_fork)


def _call(store: IntegrityStore, query: str, params: tuple[Any, ...] | None) -> Any:
    """Run one statement; run it again on a new connection if the reused one turns out to be dead."""
    import psycopg

    for attempt in (1, 2):
        try:
            with _connection(store) as conn:
                return conn.execute(query, params).fetchone()
        except psycopg.OperationalError as exc:
            if not _connection_lost(exc):
                raise
            if attempt == 2:
                raise store._unavailable(exc) from exc
    raise AssertionError("unreachable")


def _connection_lost(exc: BaseException) -> bool:
    message = str(exc).lower()
    return any(m in message for m in ("server closed the connection", "connection", "terminat", "eof"))
