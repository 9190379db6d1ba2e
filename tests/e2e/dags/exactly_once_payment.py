"""A claim payment whose first try the end-to-end test kills with SIGKILL while its HTTP request is in flight.

``pay_claim`` posts the claim to the ``payments_api`` connection under the key ``claim-{{ params.claim_id }}``.
Its 10-second lease outlasts the few seconds Airflow takes to fail the killed try and start the retry, so the
retry finds the dead try's lease still live, waits for it to expire and then takes the key over. Every request
carries the id of the task process that sends it in the ``X-Task-Pid`` header (headers are not part of the
fingerprint); the payments service records it, so the test knows which process to kill.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from airflow_integrity.operators.http import IdempotentHttpOperator


@dag(
    dag_id="exactly_once_payment",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "claim_id": Param("42", type="string", description="The claim to pay."),
        "amount": Param("125.40", type="string", description="Amount to pay, as a decimal string."),
    },
    user_defined_macros={"task_pid": os.getpid},
    tags=["test"],
)
def exactly_once_payment() -> None:
    IdempotentHttpOperator(
        task_id="pay_claim",
        http_conn_id="payments_api",
        endpoint="/payments",
        method="POST",
        headers={"Content-Type": "application/json", "X-Task-Pid": "{{ task_pid() }}"},
        data='{{ {"claim_id": params.claim_id, "amount": params.amount} | tojson }}',
        key="claim-{{ params.claim_id }}",
        namespace="payments",
        lease_seconds=10,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )


exactly_once_payment()
