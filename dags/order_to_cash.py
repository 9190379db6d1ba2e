"""Order to cash: an invoice is validated, posted to the ERP exactly once, credit-checked (with a fallback
bureau), approved by a person above a threshold, and its payment captured exactly once.

- ``validate_invoice`` checks the extracted invoice with a Great Expectations suite before anything is posted.
- ``post_to_erp`` posts it under the key ``invoice-<id>``: a retry, a clear or a second run never posts twice.
  It declares its undo, a credit note.
- ``credit_check`` asks the primary bureau (``credit_bureau_api``) and falls back to the second one only when
  the primary provably did nothing (refused, 503); a pull costs money, so it happens once per invoice, and
  there is nothing to undo.
- Invoices above ``APPROVAL_THRESHOLD`` wait for a person's approval (answered in the Airflow UI or over
  REST, signed in the trail); a rejection skips the capture.
- ``capture_payment`` captures the payment under ``capture-<id>``; its undo is a refund.
- ``compensate`` (added by ``compensation()``) runs when a step failed for good or the approval was rejected:
  it undoes what happened, newest first, each exactly once: the refund, then the credit note.

The ERP, bureaus and payments are the demo services `make run` starts (``demo/services.py``). The invoice's
story: ``airflow integrity audit export --business-key invoice-<id>``.
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

# Invoices above this amount need a person's approval before the payment is captured.
APPROVAL_THRESHOLD = 10_000.0
INVOICE_KEY = "invoice-{{ params.invoice_id }}"
INVOICE_SUITE = {
    "name": "extracted_invoice",
    "expectations": [
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "invoice_id", "regex": r"^INV-\d+$"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0.01}},
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "currency", "value_set": ["EUR", "USD"]},
        },
    ],
}


def _credit_note_for(posted: dict[str, Any]) -> dict[str, Any]:
    return {"posting_id": posted["json"]["posting_id"]}


def _refund_for(captured: dict[str, Any]) -> dict[str, Any]:
    return {"payment_id": captured["json"]["payment_id"]}


@dag(
    dag_id="order_to_cash",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "invoice_id": Param("INV-1001", type="string", pattern=r"^INV-\d+$", description="The invoice"),
        "customer": Param("ACME GmbH", type="string", description="Who is invoiced"),
        "amount": Param(2500.0, type="number", exclusiveMinimum=0, description="Invoice amount"),
        "currency": Param("EUR", type="string", enum=["EUR", "USD"]),
    },
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["integrity", "example", "order-to-cash"],
    doc_md=__doc__,
)
def order_to_cash() -> None:
    @task
    def extract_invoice(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The invoice as extracted from the incoming document (here: from the run's parameters)."""
        assert params is not None
        invoice = {key: params[key] for key in ("invoice_id", "customer", "amount", "currency")}
        record(
            "invoice.extracted",
            business_key=f"invoice-{invoice['invoice_id']}",
            details={"invoice_sha256": fingerprint(invoice)},
        )
        return [invoice]

    validated = ValidateDataOperator(
        task_id="validate_invoice",
        data=extract_invoice(),
        suite=INVOICE_SUITE,
        return_data=True,  # the validated invoice is what gets posted
        business_key=INVOICE_KEY,
    )

    post_to_erp = IdempotentHttpOperator(
        task_id="post_to_erp",
        http_conn_id="erp_api",
        endpoint="/invoices",
        method="POST",
        headers={"Content-Type": "application/json"},
        data="{{ ti.xcom_pull(task_ids='validate_invoice')['data'][0] | tojson }}",
        key=INVOICE_KEY,
        namespace="erp",
        compensate=HttpCompensation(endpoint="/credit-notes", data=_credit_note_for),
    )

    credit_check = IdempotentHttpOperator(
        task_id="credit_check",
        http_conn_id="credit_bureau_api",
        fallback_http_conn_id="credit_bureau_fallback_api",
        endpoint="/checks",
        method="POST",
        headers={"Content-Type": "application/json"},
        data='{{ {"subject": params.customer, "amount": params.amount} | tojson }}',
        key="credit-" + INVOICE_KEY,
        business_key=INVOICE_KEY,
        namespace="credit",
        compensate=NOTHING_TO_UNDO,
    )

    @task.branch
    def route(params: dict[str, Any] | None = None) -> str:
        """Above the threshold a person approves; below it the payment is captured at once."""
        assert params is not None
        return "approve_invoice" if float(params["amount"]) > APPROVAL_THRESHOLD else "capture_payment"

    approve = ApprovalOperator(
        task_id="approve_invoice",
        subject=(
            "Approve invoice {{ params.invoice_id }} of {{ params.customer }}: "
            "{{ params.amount }} {{ params.currency }}?"
        ),
        body="The invoice is posted and the customer's credit checked; approving captures the payment.",
        response_timeout=timedelta(days=2),
    )

    capture_payment = IdempotentHttpOperator(
        task_id="capture_payment",
        http_conn_id="payments_api",
        endpoint="/payments",
        method="POST",
        headers={"Content-Type": "application/json"},
        data='{{ {"invoice_id": params.invoice_id, "amount": params.amount} | tojson }}',
        key="capture-" + INVOICE_KEY,
        business_key=INVOICE_KEY,
        namespace="payments",
        trigger_rule="none_failed_min_one_success",
        compensate=HttpCompensation(endpoint="/refunds", data=_refund_for),
    )

    routed = route()
    validated >> post_to_erp >> credit_check >> routed
    routed >> approve >> capture_payment
    routed >> capture_payment
    compensation(retries=3, retry_delay=timedelta(seconds=10))


order_to_cash()
