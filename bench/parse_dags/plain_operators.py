"""Parse-time benchmark: the tasks of ``integrity_operators.py`` built with plain Airflow operators.

Not an example DAG: the tasks are never run.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import BaseSensorOperator, dag, task

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


def _check(data: object, suite: object) -> dict[str, object]:
    return {"summary": {"success": True}}


class FileSensor(BaseSensorOperator):
    """Waits for a file (the plain counterpart of ``ValidatedDataSensor``)."""

    template_fields = ("path",)

    def __init__(self, *, path: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.path = path

    def poke(self, context: object) -> bool:
        return os.path.exists(self.path)


class KeySensor(BaseSensorOperator):
    """Waits for a key (the plain counterpart of ``IdempotencyKeySensor``)."""

    template_fields = ("key",)

    def __init__(self, *, key: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.key = key

    def poke(self, context: object) -> bool:
        return True


@dag(
    dag_id="parse_bench_plain",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"claim_id": "42"},
)
def parse_bench_plain() -> None:
    arrived = FileSensor(task_id="wait_for_claims", path="/data/claims.csv", timeout=600)

    @task
    def extract() -> list[dict[str, object]]:
        return [{"claim_id": "42", "amount": 10.0}]

    rows = extract()
    checked = PythonOperator(task_id="check_claims", python_callable=_check, op_args=[rows, SUITE])
    paid = PythonOperator(task_id="pay_claim", python_callable=_pay, op_args=["42"])
    notified = HttpOperator(
        task_id="notify_payer",
        http_conn_id="payments",
        endpoint="/payments",
        method="POST",
        data={"claim_id": "{{ params.claim_id }}"},
    )

    @task
    def book(summary: dict[str, object]) -> str:
        return "booked"

    done = KeySensor(task_id="wait_for_payment", key="claim-{{ params.claim_id }}", timeout=600)
    arrived >> rows
    checked >> paid >> notified >> done
    book(checked.output)


DAG_OBJECT = parse_bench_plain()
