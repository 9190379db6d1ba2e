"""Parse-time benchmark: one DAG using every operator, sensor and decorator of airflow-integrity.

Its twin ``plain_operators.py`` builds the same tasks with plain Airflow operators; ``bench/parse_time.py``
parses both. Not an example DAG: the tasks are never run.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_integrity.operators.http import IdempotentHttpOperator
from airflow_integrity.operators.idempotent import IdempotentPythonOperator
from airflow_integrity.operators.validate import ValidateDataOperator
from airflow_integrity.sensors.idempotency import IdempotencyKeySensor
from airflow_integrity.sensors.validated_data import ValidatedDataSensor

SUITE = {
    "name": "claims",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "claim_id"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "claim_id"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0}},
    ],
}


def _pay(claim_id: str) -> dict[str, str]:
    return {"paid": claim_id}


@dag(
    dag_id="parse_bench_integrity",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"claim_id": "42"},
)
def parse_bench_integrity() -> None:
    arrived = ValidatedDataSensor(task_id="wait_for_claims", path="/data/claims.csv", suite=SUITE, timeout=600)

    @task.validated(suite=SUITE, on_failure="warn")
    def extract() -> list[dict[str, object]]:
        return [{"claim_id": "42", "amount": 10.0}]

    rows = extract()
    checked = ValidateDataOperator(task_id="check_claims", data=rows, suite=SUITE, business_key="claims-{{ ds }}")
    paid = IdempotentPythonOperator(
        task_id="pay_claim", key="claim-{{ params.claim_id }}", python_callable=_pay, op_args=["42"]
    )
    notified = IdempotentHttpOperator(
        task_id="notify_payer",
        key="notify-{{ params.claim_id }}",
        http_conn_id="payments",
        endpoint="/payments",
        method="POST",
        data={"claim_id": "{{ params.claim_id }}"},
    )

    @task.idempotent(key="ledger-{{ params.claim_id }}")
    def book(summary: dict[str, object]) -> str:
        return "booked"

    done = IdempotencyKeySensor(task_id="wait_for_payment", key="claim-{{ params.claim_id }}", timeout=600)
    arrived >> rows
    checked >> paid >> notified >> done
    book(checked.output)


DAG_OBJECT = parse_bench_integrity()
