"""An exactly-once HTTP call whose response_check rejects the (2xx) answer: the request was sent, so a retry
must not send it again. tests/operators/test_idempotent_http.py runs it against the payments service."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag

from airflow_integrity.operators.http import IdempotentHttpOperator


def _refuses_every_answer(response) -> bool:  # type: ignore[no-untyped-def]
    return response.json().get("payment_id") == "a payment id no service returns"


@dag(
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"claim_id": "1"},
    default_args={"retries": 2, "retry_delay": timedelta(seconds=0)},
    tags=["test"],
)
def idempotent_http_check():
    IdempotentHttpOperator(
        task_id="pay",
        http_conn_id="payments_api",
        endpoint="/payments",
        method="POST",
        headers={"Content-Type": "application/json"},
        data='{"claim_id": "{{ params.claim_id }}", "amount": "10.00"}',
        key="checked-{{ params.claim_id }}",
        namespace="tests",
        response_check=_refuses_every_answer,
    )


idempotent_http_check()
