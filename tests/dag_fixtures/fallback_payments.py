"""A keyed payment with a fallback provider: ``primary_api`` first, ``fallback_api`` only when the primary
provably did nothing; then a booking that fails when ``params.fail`` is true, and the compensation that refunds
the payment where it was made. tests/operators/test_fallback.py points the two connections at services (or at
nothing).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_integrity.operators.compensation import compensation
from airflow_integrity.operators.http import HttpCompensation, IdempotentHttpOperator


@dag(
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"claim_id": "1", "fail": False},
    default_args={"retries": 1, "retry_delay": 0},
    tags=["test"],
)
def fallback_payments():
    pay = IdempotentHttpOperator(
        task_id="pay",
        http_conn_id="primary_api",
        fallback_http_conn_id="fallback_api",
        endpoint="/payments",
        method="POST",
        headers={"Content-Type": "application/json"},
        data='{"claim_id": "{{ params.claim_id }}", "amount": "10.00"}',
        key="fallback-{{ params.claim_id }}",
        namespace="tests",
        extra_options={"timeout": 2},
        compensate=HttpCompensation(
            endpoint="/refunds", data=lambda paid: {"payment_id": paid["json"]["payment_id"]}
        ),
    )

    @task(retries=0)
    def book(params: dict[str, Any] | None = None) -> None:
        assert params is not None
        if params["fail"]:
            raise RuntimeError("booking failed")

    pay >> book()
    compensation(retries=0)


fallback_payments()
