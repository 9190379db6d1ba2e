"""Limiting a listing to what its reader may see: the rows of some DAGs, and the rows of no DAG or not.

The API asks Airflow's auth manager which DAGs a user may read; the store turns the answer into SQL here, once
for the trail, the validations and the ledger.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, bindparam

PARAM = "readable_dags"


def scope_clause(
    dag_sql: str, readable_dags: frozenset[str] | None, without_dag: bool, params: dict[str, Any]
) -> str | None:
    """The condition that keeps rows whose DAG (``dag_sql``) is in ``readable_dags`` (``None``: any DAG) and,
    with ``without_dag``, rows of no DAG; ``None`` when it keeps every row. Adds its parameter to ``params``."""
    if readable_dags is None and without_dag:
        return None
    allowed: list[str] = []
    if readable_dags is None:
        allowed.append(f"{dag_sql} IS NOT NULL")
    elif readable_dags:
        allowed.append(f"{dag_sql} IN :{PARAM}")
        params[PARAM] = sorted(readable_dags)
    if without_dag:
        allowed.append(f"{dag_sql} IS NULL")
    return f"({' OR '.join(allowed)})" if allowed else "1 = 0"


def bind_scope(statement: Any, params: dict[str, Any]) -> Any:
    """``statement`` with the DAG list of :func:`scope_clause` bound as an expanding list, if it has one."""
    if PARAM in params:
        return statement.bindparams(bindparam(PARAM, expanding=True, type_=String()))
    return statement
