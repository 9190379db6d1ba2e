"""Two keyed payments, then a step that fails when asked to: the run's compensation refunds both, newest first.

``pay_deposit`` and ``pay_balance`` each pay once per claim and declare the refund that undoes them; the
``book`` step (no retries) fails when ``params.fail`` is true, after both payments happened.
``compensation()`` adds the teardown that refunds them. tests/operators/test_compensation.py runs it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_integrity.operators.compensation import compensation
from airflow_integrity.operators.http import HttpCompensation, IdempotentHttpOperator


def _refund_of(paid: dict[str, Any]) -> dict[str, Any]:
    return {"payment_id": paid["json"]["payment_id"]}


@dag(
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"claim_id": "1", "fail": False},
    default_args={"retries": 0},
    tags=["test"],
)
def compensated_payments():
    payments = [
        IdempotentHttpOperator(
            task_id=f"pay_{part}",
            http_conn_id="payments_api",
            endpoint="/payments",
            method="POST",
            headers={"Content-Type": "application/json"},
            data=f'{{"claim_id": "{{{{ params.claim_id }}}}", "part": "{part}"}}',
            key=f"{part}-{{{{ params.claim_id }}}}",
            business_key="claim-{{ params.claim_id }}",
            namespace="tests",
            compensate=HttpCompensation(endpoint="/refunds", data=_refund_of),
        )
        for part in ("deposit", "balance")
    ]

    @task
    def book(params: dict[str, Any] | None = None) -> str:
        assert params is not None
        if params["fail"]:
            raise RuntimeError(f"booking claim {params['claim_id']} failed")
        return "booked"

    payments[0] >> payments[1] >> book()
    compensation(retries=2, retry_delay=timedelta(seconds=0))


compensated_payments()
