"""Integrity store check: the smallest DAG that proves a worker reaches the integrity store.

Run it after pointing ``integrity_default`` at a new database: the first task reports where the store
is and its schema revision; the second fails the run if the schema is not current.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_integrity.hooks.integrity import IntegrityCheckHook


@dag(
    dag_id="integrity_store_check",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["integrity", "example"],
    doc_md=__doc__,
)
def integrity_store_check() -> None:
    @task
    def describe_store() -> dict[str, Any]:
        """Reach the store through the hook and report backend, location, store id and revision."""
        return IntegrityCheckHook().get_store().describe().as_dict()

    # integrity-lint: ignore[unvalidated-handoff]: the store's description of itself, which this task checks
    @task
    def require_current_schema(status: dict[str, Any]) -> str:
        """Fail unless the store's schema is the one this provider version expects."""
        if not status["current"]:
            raise RuntimeError(f"integrity store schema {status['revision']} is not {status['head']}")
        return status["store_id"]

    require_current_schema(describe_store())


integrity_store_check()
