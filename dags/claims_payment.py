"""Pay an approved insurance claim exactly once.

The payment is keyed by the claim: ``claim-{{ params.claim_id }}``. Triggering the DAG twice for the same
claim, retrying or clearing ``pay_claim``, or a worker dying mid-call never pays twice: the first attempt
calls the payments API (sending the key as the ``Idempotency-Key`` header), every later one returns the
stored response. Every decision (claimed, completed, replayed, ...) lands in the audit trail under the
business key ``claim-<id>``.

If a later step fails for good after the payment, ``compensate`` (added by ``compensation()``) refunds it,
exactly once, under the key ``claim-<id>/compensation``.

Needs an HTTP connection ``payments_api`` pointing at the payments service: `make run` points it at the demo
services, production at the real one (for example ``AIRFLOW_CONN_PAYMENTS_API=https://payments.internal``).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from airflow_integrity.audit import fingerprint, record
from airflow_integrity.operators.compensation import compensation
from airflow_integrity.operators.http import HttpCompensation, IdempotentHttpOperator


@dag(
    dag_id="claims_payment",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "claim_id": Param("42", type="string", pattern=r"^[0-9]+$", description="The approved claim to pay."),
        "amount": Param(
            "125.40", type="string", pattern=r"^[0-9]+(\.[0-9]{1,2})?$", description="Amount to pay, as a decimal."
        ),
    },
    tags=["integrity", "example", "claims"],
)
def claims_payment():
    @task
    def approve_claim(params=None) -> dict:
        claim = {"claim_id": params["claim_id"], "amount": params["amount"]}
        record("claim.approved", business_key=f"claim-{claim['claim_id']}", details={"claim": fingerprint(claim)})
        return claim

    # integrity-lint: ignore[unvalidated-handoff]: the claim is the run's parameters, checked against their
    # schema when the run is triggered
    pay_claim = IdempotentHttpOperator(
        task_id="pay_claim",
        http_conn_id="payments_api",
        endpoint="/payments",
        method="POST",
        headers={"Content-Type": "application/json"},
        data="{{ ti.xcom_pull(task_ids='approve_claim') | tojson }}",
        key="claim-{{ params.claim_id }}",
        namespace="payments",
        retries=3,
        compensate=HttpCompensation(
            endpoint="/refunds", data=lambda paid: {"payment_id": paid["json"]["payment_id"]}
        ),
    )

    # integrity-lint: ignore[unvalidated-handoff]: only the payment id, from the payment service's stored
    # answer to the keyed request
    @task
    def confirm_payment(payment: dict, params=None) -> str:
        payment_id = payment["json"]["payment_id"]
        record("claim.paid", business_key=f"claim-{params['claim_id']}", details={"payment_id": payment_id})
        return payment_id

    approve_claim() >> pay_claim
    confirm_payment(pay_claim.output)
    compensation()


claims_payment()
