"""Loan origination: an application is validated, funds are reserved, the credit bureau is pulled exactly once,
an underwriter decides with an electronic signature, and the loan is disbursed exactly once.

- ``validate_application`` checks the application with a Great Expectations suite before anything happens.
- ``reserve_funds`` reserves the amount with the lender under ``loan-<id>``; its undo releases the reservation.
- ``pull_credit`` pulls the applicant's report under ``bureau-loan-<id>``: a pull costs money, so a retry, a
  clear or a second run never pulls twice; the fallback bureau answers only when the primary provably did
  nothing. A pull cannot be undone (``NOTHING_TO_UNDO``).
- ``underwriter_decision`` waits for the underwriter (the Airflow UI, or ``PATCH .../hitlDetails``); the answer
  is signed in the trail: printed name, date and time, meaning (approval or rejection).
- ``disburse`` pays the loan out under ``disburse-loan-<id>``, exactly once; nothing runs after it.
- ``compensate`` (added by ``compensation()``): a rejected application, or a disbursement that failed for good,
  releases the reservation, exactly once.

The lender and the bureaus are the demo services `make run` starts (``demo/services.py``). The application's
story: ``airflow integrity audit export --business-key loan-<id>``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, dag, task

from airflow_integrity.audit import fingerprint, record
from airflow_integrity.operators.compensation import NOTHING_TO_UNDO, compensation
from airflow_integrity.operators.http import HttpCompensation, IdempotentHttpOperator
from airflow_integrity.operators.validate import ValidateDataOperator

LOAN_KEY = "loan-{{ params.application_id }}"
APPLICATION_SUITE = {
    "name": "loan_application",
    "expectations": [
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "application_id", "regex": r"^APP-\d+$"},
        },
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "applicant"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "amount", "min_value": 1000, "max_value": 1_000_000},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "term_months", "value_set": [12, 24, 36, 60]},
        },
    ],
}


def _release_of(reserved: dict[str, Any]) -> dict[str, Any]:
    return {"reservation_id": reserved["json"]["reservation_id"]}


@dag(
    dag_id="loan_origination",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "application_id": Param("APP-501", type="string", pattern=r"^APP-\d+$", description="The application"),
        "applicant": Param("Jane Doe", type="string", description="Who applies"),
        "amount": Param(25000.0, type="number", minimum=1000, maximum=1_000_000, description="Loan amount"),
        "term_months": Param(36, type="integer", enum=[12, 24, 36, 60]),
    },
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["integrity", "example", "lending"],
    doc_md=__doc__,
)
def loan_origination() -> None:
    @task
    def receive_application(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The application as submitted; the trail holds its fingerprint, never the applicant's data."""
        assert params is not None
        application = {key: params[key] for key in ("application_id", "applicant", "amount", "term_months")}
        record(
            "loan.application_received",
            business_key=f"loan-{application['application_id']}",
            details={"application_sha256": fingerprint(application)},
        )
        return [application]

    validated = ValidateDataOperator(
        task_id="validate_application",
        data=receive_application(),
        suite=APPLICATION_SUITE,
        business_key=LOAN_KEY,
    )

    reserve_funds = IdempotentHttpOperator(
        task_id="reserve_funds",
        http_conn_id="lender_api",
        endpoint="/reservations",
        method="POST",
        headers={"Content-Type": "application/json"},
        data='{{ {"application_id": params.application_id, "amount": params.amount} | tojson }}',
        key=LOAN_KEY,
        namespace="lender",
        compensate=HttpCompensation(endpoint="/releases", data=_release_of),
    )

    pull_credit = IdempotentHttpOperator(
        task_id="pull_credit",
        http_conn_id="credit_bureau_api",
        fallback_http_conn_id="credit_bureau_fallback_api",
        endpoint="/checks",
        method="POST",
        headers={"Content-Type": "application/json"},
        data='{{ {"subject": params.applicant, "amount": params.amount} | tojson }}',
        key="bureau-" + LOAN_KEY,
        business_key=LOAN_KEY,
        namespace="credit",
        compensate=NOTHING_TO_UNDO,
    )

    # integrity-lint: ignore[unvalidated-handoff]: the bureau's answer is shown to the underwriter, who judges
    # it and signs
    decision = ApprovalOperator(
        task_id="underwriter_decision",
        subject="Approve loan {{ params.application_id }}: {{ params.amount }}, {{ params.term_months }} months?",
        body=(
            "Applicant {{ params.applicant }}; bureau score "
            "{{ ti.xcom_pull(task_ids='pull_credit')['json']['score'] }} "
            "({{ ti.xcom_pull(task_ids='pull_credit')['json']['bureau'] }})."
        ),
        response_timeout=timedelta(days=5),
    )

    # integrity-lint: ignore[unvalidated-handoff]: the lender's own reservation id for this loan, handed back
    # to the lender
    disburse = IdempotentHttpOperator(
        task_id="disburse",
        http_conn_id="lender_api",
        endpoint="/disbursements",
        method="POST",
        headers={"Content-Type": "application/json"},
        data=(
            '{{ {"application_id": params.application_id, "amount": params.amount, '
            '"reservation_id": ti.xcom_pull(task_ids="reserve_funds")["json"]["reservation_id"]} | tojson }}'
        ),
        key="disburse-" + LOAN_KEY,
        business_key=LOAN_KEY,
        namespace="lender",
        compensate=NOTHING_TO_UNDO,  # the last step: nothing after it can fail the process
    )

    validated >> reserve_funds >> pull_credit >> decision >> disburse
    compensation(retries=3, retry_delay=timedelta(seconds=10))


loan_origination()
