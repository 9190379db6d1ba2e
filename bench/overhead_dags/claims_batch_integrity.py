"""A batch of 10 claims, 5 tasks each (50 tasks), with every integrity feature of the package on.

Per claim: ``receive`` returns its line items, validated by ``@task.validated``; ``check`` validates them
again with ``ValidateDataOperator`` (policy ``warn``); after it, ``assess`` prices them under
``@task.idempotent``; ``pay`` is an ``IdempotentPythonOperator``; ``close`` records a business event with
``airflow_integrity.audit.record``. Keys carry the run id, so every run claims and completes fresh keys.
``claims_batch_plain.py`` is the same DAG built from Airflow's own operators.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task
from claims_batch_work import CLAIMS, LINE_ITEMS_SUITE, assess_items, line_items, payment_for

from airflow_integrity.operators.idempotent import IdempotentPythonOperator
from airflow_integrity.operators.validate import ValidateDataOperator

_GX_SUITE = {"name": "line_items", "expectations": LINE_ITEMS_SUITE}


@dag(
    dag_id="claims_batch_integrity",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["bench"],
)
def claims_batch_integrity() -> None:
    for claim in CLAIMS:

        @task.validated(task_id=f"receive_{claim}", suite=_GX_SUITE, business_key=f"claim-{claim}")
        def receive(claim: str = claim) -> list[dict[str, Any]]:
            return line_items(claim)

        items = receive()
        check = ValidateDataOperator(
            task_id=f"check_{claim}",
            data=items,
            suite=_GX_SUITE,
            on_failure="warn",
            business_key=f"claim-{claim}",
        )

        @task.idempotent(task_id=f"assess_{claim}", key=f"assess-{claim}-{{{{ run_id }}}}")
        def assess(items: list[dict[str, Any]]) -> dict[str, Any]:
            return assess_items(items)

        assessment = assess(items)
        check >> assessment
        pay = IdempotentPythonOperator(
            task_id=f"pay_{claim}",
            key=f"pay-{claim}-{{{{ run_id }}}}",
            python_callable=payment_for,
            op_args=[claim, assessment],
        )

        @task(task_id=f"close_{claim}")
        def close(payment: dict[str, Any], claim: str = claim) -> str:
            from airflow_integrity.audit import record

            record("claim.closed", business_key=f"claim-{claim}", details={"payment": payment["reference"]})
            return payment["reference"]

        close(pay.output)


claims_batch_integrity()
