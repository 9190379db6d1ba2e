"""Reading the chained trail a page at a time: filters, a business key's story, and the seq cursor.

A page is read with a cursor on ``seq`` (``before`` for newest first, ``after`` for oldest first): events are
appended with growing sequence numbers, so a page never shifts while others record, and the next page starts
exactly after the last event shown. Every filter is served by an index of revision a4 that ends in ``seq``;
``since``/``until`` by the ``recorded_at`` index.

A time window needs a choice the database's planner gets wrong: it assumes a window's events are spread evenly
over the chain and walks the chain from its newest end, while they lie together where their time puts them (an
old window was 0.7 s of reading on a million events). A page of a window first counts, through the
``recorded_at`` index, whether the window holds at most :data:`NARROW_WINDOW` events; if so they are read through
that index and sorted (a bounded cost wherever the window lies), else the chain is walked as for other filters.

A business key's **story** is the events recorded with the key plus the events without a business key of the DAG
runs that recorded it (their task and run states, approvals). It is read as two index look-ups: the runs that
recorded the key, then their unkeyed events; never by testing each unkeyed event of the trail against the key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import text

from airflow_integrity.store.audit.event import AuditRecord, to_timestamp
from airflow_integrity.store.audit.schema import (
    EVENT,
    RECORD_SELECT,
    EventContent,
    content_of,
    field_sql,
    record_from_content,
)
from airflow_integrity.store.read_once import read_once
from airflow_integrity.store.scope import bind_scope, scope_clause

if TYPE_CHECKING:
    from airflow_integrity.store.store import IntegrityStore, Reads

# Body fields an events list can be filtered on by equality.
EQUALITY_FILTERS = ("dag_id", "run_id", "task_id", "event_type", "actor")
MAX_PAGE = 500
# A time window of at most this many events is read through the recorded_at index and sorted (about 2 µs an
# event on PostgreSQL: 40 ms at most), a wider one by walking the chain from its newest end.
NARROW_WINDOW = 20_000


@dataclass(frozen=True)
class EventFilter:
    """Which events to read.

    Args:
        dag_id, run_id, task_id, event_type, actor: Equal to this value.
        map_index: Of this map index (``-1``: of an unmapped task).
        business_key: Recorded with this business key; with ``story``, also the unkeyed events of the runs that
            recorded it.
        since: Recorded at or after this time (UTC when no zone is given). ``until``: recorded before it.
        readable_dags: Only events of these DAGs (``None``: of every DAG).
        without_dag: Whether events recorded outside any DAG are included.
        story: See ``business_key``.
    """

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    event_type: str | None = None
    actor: str | None = None
    map_index: int | None = None
    business_key: str | None = None
    since: datetime | str | None = None
    until: datetime | str | None = None
    readable_dags: frozenset[str] | None = None
    without_dag: bool = True
    story: bool = False

    @property
    def has_window(self) -> bool:
        """Whether it selects a time window (``since`` or ``until``)."""
        return self.since is not None or self.until is not None

    def window_clauses(self, dialect: str) -> tuple[list[str], dict[str, Any]]:
        """The conditions of ``since`` and ``until`` alone."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if (start := to_timestamp(self.since, "since")) is not None:
            clauses.append(f"{field_sql(dialect, 'recorded_at')} >= :since")
            params["since"] = start
        if (end := to_timestamp(self.until, "until")) is not None:
            clauses.append(f"{field_sql(dialect, 'recorded_at')} < :until")
            params["until"] = end
        return clauses, params

    def clauses(self, dialect: str) -> tuple[list[str], dict[str, Any]]:
        """SQL conditions on event rows ``e`` and their parameters (expanding ``readable_dags``)."""
        clauses, params = self.window_clauses(dialect)
        for name in EQUALITY_FILTERS:
            value = getattr(self, name)
            if value is not None:
                clauses.append(f"{field_sql(dialect, name)} = :{name}")
                params[name] = value
        if self.map_index is not None:
            # A JSON number: PostgreSQL's ->> gives its text, SQLite's json_extract the integer.
            clauses.append(f"{field_sql(dialect, 'map_index')} = :map_index")
            params["map_index"] = str(int(self.map_index)) if dialect == "postgresql" else int(self.map_index)
        if self.business_key is not None:
            params["business_key"] = self.business_key
            keyed = f"{field_sql(dialect, 'business_key')} = :business_key"
            clauses.append(_story_clause(dialect) if self.story else keyed)
        if (
            scope := scope_clause(field_sql(dialect, "dag_id"), self.readable_dags, self.without_dag, params)
        ) is not None:
            clauses.append(scope)
        return clauses, params


def _story_clause(dialect: str) -> str:
    """Events recorded with ``:business_key``, or without a key in a run that recorded it."""
    key, dag, run = (field_sql(dialect, name, "k") for name in ("business_key", "dag_id", "run_id"))
    own_dag, own_run, own_key = (field_sql(dialect, name, "r") for name in ("dag_id", "run_id", "business_key"))
    return (
        f"e.seq IN (SELECT k.seq FROM {EVENT} AS k WHERE {key} = :business_key "
        f"UNION ALL SELECT r.seq FROM {EVENT} AS r JOIN (SELECT DISTINCT {dag} AS dag_id, {run} AS run_id "
        f"FROM {EVENT} AS k WHERE {key} = :business_key AND {run} IS NOT NULL) AS runs "
        f"ON {own_dag} = runs.dag_id AND {own_run} = runs.run_id WHERE {own_key} IS NULL)"
    )


class EventRow(msgspec.Struct, frozen=True, dict=True):
    """One chained event as stored: its body is read (:attr:`content`, :attr:`record`) when first asked for, so
    reading a page costs what its statement costs and each reader decodes only what it uses."""

    seq: int
    body: str
    prev_hash: str
    hash: str

    @read_once
    def content(self) -> EventContent | None:
        """The fields of the body; ``None`` when it is not an event's JSON (a damaged or tampered row)."""
        return content_of(self.body)

    @property
    def raw(self) -> str | None:
        """The stored text of a body that is not an event's JSON (bytes that are not UTF-8 shown as U+FFFD);
        ``None`` for a readable one."""
        return None if self.content is not None else self.shown_body

    @property
    def shown_body(self) -> str:
        """The body as stored, as text that can be written anywhere (bytes that are not UTF-8 as U+FFFD)."""
        try:
            self.body.encode("utf-8")
        except UnicodeEncodeError:
            return self.stored_body.decode("utf-8", "replace")
        return self.body

    @property
    def stored_body(self) -> bytes:
        """The bytes of the body as stored: what its hash covers."""
        return self.body.encode("utf-8", "surrogateescape")

    @read_once
    def record(self) -> AuditRecord | None:
        """The event as an :class:`AuditRecord`; ``None`` for an unreadable body."""
        content = self.content
        return None if content is None else record_from_content(self.seq, content, self.prev_hash, self.hash)


def rows_of(result: Any) -> Iterator[EventRow]:
    """Stored rows ``(seq, body, prev_hash, hash)`` as :class:`EventRow`."""
    for seq, body, prev_hash, hash_ in result:
        if type(body) is not str or type(prev_hash) is not str or type(hash_) is not str:
            body, prev_hash, hash_ = _as_text(body), _as_text(prev_hash, "replace"), _as_text(hash_, "replace")
        yield EventRow(seq, body, prev_hash, hash_)


def _as_text(value: Any, errors: str = "surrogateescape") -> str:
    """A value SQLite stored as a BLOB (or NULL) in a text column of a tampered row, as text. Bytes that are not
    UTF-8 are kept as surrogates (``errors``), so that ``text.encode("utf-8", "surrogateescape")`` gives them
    back, or replaced by U+FFFD."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors)
    return "" if value is None else str(value)


def _statement(
    where: list[str], params: dict[str, Any], order: str, limit: int | None, *, sort: bool = False
) -> Any:
    sql = f"SELECT {RECORD_SELECT} FROM {EVENT} AS e"
    if where:
        sql += f" WHERE {' AND '.join(where)}"
    # ``seq + 0`` is not the key's order: the database must find the rows by their filters, then sort them.
    sql += f" ORDER BY {'e.seq + 0' if sort else 'e.seq'} {order}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return bind_scope(text(sql), params)


def _cursor_clause(before: int | None, after: int | None, params: dict[str, Any]) -> tuple[str | None, str]:
    """The cursor's condition (``None`` for the first page) and the order it reads in."""
    if after is not None:
        params["after"] = int(after)
        return "e.seq > :after", "ASC"
    if before is not None:
        params["before"] = int(before)
        return "e.seq < :before", "DESC"
    return None, "DESC"


def page_query(
    dialect: str,
    where: EventFilter,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
    narrow_window: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """The statement and parameters :func:`page` runs (for ``EXPLAIN`` in tests and benchmarks);
    ``narrow_window``: read the window's events through the ``recorded_at`` index and sort them."""
    limit = max(1, min(int(limit), MAX_PAGE))
    clauses, params = where.clauses(dialect)
    cursor, order = _cursor_clause(before, after, params)
    if cursor is not None:
        clauses.append(cursor)
    return _statement(clauses, params, order, limit, sort=narrow_window and where.has_window), params


def window_is_narrow(
    reads: Reads, dialect: str, where: EventFilter, *, before: int | None = None, after: int | None = None
) -> bool:
    """Whether ``where``'s time window (on the cursor's side) holds at most :data:`NARROW_WINDOW` events,
    counted through the ``recorded_at`` index without reading further than that."""
    clauses, params = where.window_clauses(dialect)
    cursor, _ = _cursor_clause(before, after, params)
    if cursor is not None:
        clauses.append(cursor)
    sql = (
        f"SELECT COUNT(*) FROM (SELECT 1 FROM {EVENT} AS e WHERE {' AND '.join(clauses)} "
        f"LIMIT {NARROW_WINDOW + 1}) AS window_events"
    )
    return int(reads.all(text(sql), params)[0][0]) <= NARROW_WINDOW


def page(
    store: IntegrityStore,
    where: EventFilter,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[EventRow]:
    """One page of matching events: newest first below ``before`` (or from the newest), or oldest first
    above ``after`` when it is given.

    Raises:
        AuditEventError: ``since``/``until`` is not a date or time.
    """

    def read(reads: Reads) -> list[Any]:
        narrow = where.has_window and window_is_narrow(reads, store.backend, where, before=before, after=after)
        statement, params = page_query(
            store.backend, where, before=before, after=after, limit=limit, narrow_window=narrow
        )
        return reads.all(statement, params)

    return list(rows_of(store.reading(read)))


def stream(store: IntegrityStore, where: EventFilter, *, max_seq: int | None = None) -> Iterator[EventRow]:
    """Every matching event in sequence order, streamed from the database (constant memory)."""
    yield from rows_of(stream_rows(store, where, max_seq=max_seq))


def stream_rows(
    store: IntegrityStore, where: EventFilter, *, max_seq: int | None = None
) -> Iterator[tuple[int, str, str, str]]:
    """As :func:`stream`, the stored rows as they are: ``(seq, body, prev_hash, hash)``."""
    clauses, params = where.clauses(store.backend)
    if max_seq is not None:
        clauses.append("e.seq <= :max_seq")
        params["max_seq"] = max_seq
    with store.read() as conn:
        result = conn.execution_options(stream_results=True, yield_per=2000).execute(
            _statement(clauses, params, "ASC", None), params
        )
        yield from result


def of_runs(store: IntegrityStore, runs: set[tuple[str, str]], event_type: str) -> list[EventRow]:
    """Every chained event of ``event_type`` in the DAG runs ``runs`` (``(dag_id, run_id)`` pairs), oldest first:
    one statement joining the runs (a ``VALUES`` list) to the events through the ``(dag_id, run_id)`` index or
    the event type's, whichever the planner finds cheaper. (A ``UNION ALL`` of one look-up per run took 2 ms to
    plan for 50 runs.)"""
    if not runs:
        return []
    dag, run, kind = (field_sql(store.backend, name) for name in ("dag_id", "run_id", "event_type"))
    params: dict[str, Any] = {"event_type": event_type}
    values = []
    for n, (dag_id, run_id) in enumerate(sorted(runs)):
        params[f"dag_{n}"], params[f"run_{n}"] = dag_id, run_id
        values.append(f"(:dag_{n}, :run_{n})")
    sql = (
        f"WITH runs (dag_id, run_id) AS (VALUES {', '.join(values)}) "
        f"SELECT {RECORD_SELECT} FROM runs JOIN {EVENT} AS e ON {dag} = runs.dag_id AND {run} = runs.run_id "
        f"WHERE {kind} = :event_type ORDER BY e.seq"
    )
    return list(rows_of(store.reading(lambda reads: reads.all(text(sql), params))))


def get(store: IntegrityStore, seq: int) -> EventRow | None:
    """The chained event ``seq``, or ``None``."""
    statement = text(f"SELECT {RECORD_SELECT} FROM {EVENT} AS e WHERE e.seq = :seq")
    return next(rows_of(store.reading(lambda reads: reads.all(statement, {"seq": seq}))), None)


def head(store: IntegrityStore) -> int:
    """The sequence number of the newest chained event (0 for an empty trail)."""
    statement = text(f"SELECT COALESCE(MAX(seq), 0) FROM {EVENT}")
    return int(store.reading(lambda reads: reads.all(statement, {}))[0][0])
