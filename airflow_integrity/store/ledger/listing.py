"""Listing the ledger's keys a page at a time, for people: newest change first, by namespace and state.

A key belongs to the DAG of its origin (the holder that first claimed it with its current inputs): that DAG's
readers may see it. Keys claimed outside a DAG (from the CLI or plain Python) belong to no DAG. Results are
not read: an entry's ``result_json`` is ``None`` here; :meth:`IdempotencyLedger.load_result` reads one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from airflow_integrity.store.ledger.entries import LedgerEntry
from airflow_integrity.store.ledger.rows import entry_from_row
from airflow_integrity.store.ledger.sql import ENTRY_COLUMNS
from airflow_integrity.store.scope import bind_scope, scope_clause

if TYPE_CHECKING:
    from airflow_integrity.store.store import IntegrityStore

MAX_PAGE = 500
# The result itself stays in the database; the listing shows its size and hash.
_LISTED = ENTRY_COLUMNS.replace("result_json", "NULL AS result_json")


def origin_dag_sql(dialect: str, field: str = "dag_id", column: str = "origin") -> str:
    """SQL for a field (``dag_id``, ``run_id``) of a ledger row's origin, or of another JSON ``column`` such as
    ``holder`` (NULL for a key claimed outside a DAG)."""
    if dialect == "postgresql":
        return f"(CAST({column} AS jsonb) ->> '{field}')"
    return f"json_extract({column}, '$.{field}')"


@dataclass(frozen=True)
class KeyFilter:
    """Which keys to list.

    Args:
        namespace: Keys of this namespace (``None``: of every namespace).
        state: ``in_progress``, ``completed``, ``failed`` or ``released``.
        dag_id: Keys whose origin is this DAG.
        run_id: Keys whose origin is this run (of ``dag_id``).
        readable_dags: Only keys of these DAGs (``None``: of every DAG).
        without_dag: Whether keys claimed outside any DAG are included.
    """

    namespace: str | None = None
    state: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    readable_dags: frozenset[str] | None = None
    without_dag: bool = True


def list_keys(
    store: IntegrityStore, where: KeyFilter, *, before: int | None = None, limit: int = 50
) -> list[tuple[int, LedgerEntry]]:
    """A page of keys as ``(row id, entry)``, most recently created row first, below the row id ``before``."""
    dag = origin_dag_sql(store.backend)
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for name in ("namespace", "state"):
        if (value := getattr(where, name)) is not None:
            clauses.append(f"{name} = :{name}")
            params[name] = value
    if where.dag_id is not None:
        clauses.append(f"{dag} = :dag_id")
        params["dag_id"] = where.dag_id
    if where.run_id is not None:
        clauses.append(f"{origin_dag_sql(store.backend, 'run_id')} = :run_id")
        params["run_id"] = where.run_id
    if (scope := scope_clause(dag, where.readable_dags, where.without_dag, params)) is not None:
        clauses.append(scope)
    if before is not None:
        clauses.append("id < :before")
        params["before"] = int(before)
    sql = f"SELECT {_LISTED} FROM integrity_ledger"
    if clauses:
        sql += f" WHERE {' AND '.join(clauses)}"
    sql += f" ORDER BY id DESC LIMIT {max(1, min(int(limit), MAX_PAGE))}"
    with store.read() as conn:
        rows = conn.execute(bind_scope(text(sql), params), params).all()
    return [(int(row[0]), entry_from_row(tuple(row))) for row in rows]


def completed_by_run(store: IntegrityStore, dag_id: str, run_id: str) -> list[LedgerEntry]:
    """The keys a DAG run's tasks completed (the holder that completed them is of that run), in the order they
    were completed: the effects that run made. A key the run only replayed belongs to the run that completed it."""
    holder = {field: origin_dag_sql(store.backend, field, column="holder") for field in ("dag_id", "run_id")}
    sql = (
        f"SELECT {ENTRY_COLUMNS} FROM integrity_ledger WHERE state = 'completed' "
        f"AND {holder['dag_id']} = :dag_id AND {holder['run_id']} = :run_id ORDER BY completed_at, id"
    )
    with store.read() as conn:
        rows = conn.execute(text(sql), {"dag_id": dag_id, "run_id": run_id}).all()
    return [entry_from_row(tuple(row)) for row in rows]


def namespaces(store: IntegrityStore) -> list[str]:
    """Every namespace that holds a key, in order."""
    with store.read() as conn:
        return [row[0] for row in conn.execute(text("SELECT DISTINCT namespace FROM integrity_ledger ORDER BY 1"))]
