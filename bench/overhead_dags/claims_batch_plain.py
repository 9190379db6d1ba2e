"""The DAG of ``claims_batch_integrity.py`` built from Airflow's own operators: the same 50 tasks and work.

``check`` counts the items instead of validating them, ``assess`` and ``pay`` run without a ledger,
``close`` logs instead of recording an audit event.
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import dag, task
from claims_batch_work import CLAIMS, assess_items, line_items, payment_for

log = logging.getLogger(__name__)


@dag(
    dag_id="claims_batch_plain",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["bench"],
)
def claims_batch_plain() -> None:
    for claim in CLAIMS:

        @task(task_id=f"receive_{claim}")
        def receive(claim: str = claim) -> list[dict[str, Any]]:
            return line_items(claim)

        @task(task_id=f"check_{claim}")
        def check(items: list[dict[str, Any]]) -> int:
            return len(items)

        @task(task_id=f"assess_{claim}")
        def assess(items: list[dict[str, Any]]) -> dict[str, Any]:
            return assess_items(items)

        items = receive()
        assessment = assess(items)
        check(items) >> assessment
        pay = PythonOperator(
            task_id=f"pay_{claim}",
            python_callable=payment_for,
            op_args=[claim, assessment],
        )

        @task(task_id=f"close_{claim}")
        def close(payment: dict[str, Any], claim: str = claim) -> str:
            log.info("claim %s closed: %s", claim, payment["reference"])
            return str(payment["reference"])

        close(pay.output)


claims_batch_plain()
