"""A keyed payment with a fallback provider: ``primary_api`` first, ``fallback_api`` only when the primary
provably did nothing. tests/operators/test_fallback.py points the two connections at services (or at nothing).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_integrity.operators.http import IdempotentHttpOperator


@dag(
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"claim_id": "1"},
    default_args={"retries": 1, "retry_delay": 0},
    tags=["test"],
)
def fallback_payments():
    IdempotentHttpOperator(
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
    )


fallback_payments()
