"""An order whose booking fails after two keyed payments: its compensation refunds both, newest first.

``pay_deposit`` then ``pay_balance`` post to the ``payments_api`` connection under the keys
``deposit-<order>`` and ``balance-<order>``; each declares the refund that undoes it. ``book`` fails when
``params.fail`` is true. ``compensation()`` adds the teardown that refunds the payments when the run fails:
short leases (5 s) so that a retry takes a killed compensation over quickly. Every request carries the id of
the process that sends it (``X-Task-Pid``), so the end-to-end test knows which process to kill.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from airflow_integrity.operators.compensation import compensation
from airflow_integrity.operators.http import HttpCompensation, IdempotentHttpOperator


def _refund_of(paid: dict[str, Any]) -> dict[str, Any]:
    return {"payment_id": paid["json"]["payment_id"]}


def _sender(_paid: dict[str, Any]) -> dict[str, str]:
    return {"X-Task-Pid": str(os.getpid())}


@dag(
    dag_id="compensated_order",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"order_id": Param("1", type="string"), "fail": Param(True, type="boolean")},
    user_defined_macros={"task_pid": os.getpid},
    default_args={"retries": 0},
    tags=["test"],
)
def compensated_order() -> None:
    payments = [
        IdempotentHttpOperator(
            task_id=f"pay_{part}",
            http_conn_id="payments_api",
            endpoint="/payments",
            method="POST",
            headers={"Content-Type": "application/json", "X-Task-Pid": "{{ task_pid() }}"},
            data=f'{{"order_id": "{{{{ params.order_id }}}}", "part": "{part}"}}',
            key=f"{part}-{{{{ params.order_id }}}}",
            business_key="order-{{ params.order_id }}",
            namespace="orders",
            lease_seconds=5,
            compensate=HttpCompensation(endpoint="/refunds", data=_refund_of, headers=_sender),
        )
        for part in ("deposit", "balance")
    ]

    @task
    def book(params: dict[str, Any] | None = None) -> str:
        assert params is not None
        if params["fail"]:
            raise RuntimeError(f"booking order {params['order_id']} failed")
        return "booked"

    payments[0] >> payments[1] >> book()
    compensation(lease_seconds=5, retries=2, retry_delay=timedelta(seconds=1))


compensated_order()
