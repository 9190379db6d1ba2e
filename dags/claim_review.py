"""Claim review: a claim is received, assessed, approved by a person, and only then released for payment.

Every step leaves its trail in the integrity store: the task and run state changes (recorded by the
plugin's listeners), the explicit business events of each task (``airflow_integrity.audit.record`` with the
business key ``claim-<id>``, data as SHA-256 fingerprints), and the reviewer's electronic signature when
they answer the approval task (printed name, date and time, meaning: approval or rejection).

Trigger it through the REST API, answer the approval in the Airflow UI (or ``PATCH .../hitlDetails``), then
read the claim's whole story with::

    airflow integrity audit export --business-key claim-42 --format csv
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, dag, task

from airflow_integrity.audit import fingerprint, record

# Claims above this amount need a person's approval before payment (the process's review rule).
REVIEW_THRESHOLD = 1000.0


def _key(claim: dict[str, Any]) -> str:
    return f"claim-{claim['claim_id']}"


@dag(
    dag_id="claim_review",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "claim_id": Param(42, type="integer", minimum=1, description="The claim to review"),
        "amount": Param(1250.0, type="number", minimum=0, description="Amount claimed, EUR"),
        "member_id": Param("M-1001", type="string", description="The insured member"),
    },
    tags=["integrity", "example", "audit"],
    doc_md=__doc__,
)
def claim_review() -> None:
    @task
    def receive_claim(params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Take the claim in; the trail holds its fingerprint, never the member's data."""
        assert params is not None
        claim = {
            "claim_id": params["claim_id"],
            "amount": float(params["amount"]),
            "member_id": params["member_id"],
        }
        record("claim.received", business_key=_key(claim), details={"claim_sha256": fingerprint(claim)})
        return claim

    # integrity-lint: ignore[unvalidated-handoff]: the claim is the run's parameters, checked against their
    # schema when the run is triggered
    @task
    def assess(claim: dict[str, Any]) -> dict[str, Any]:
        """Apply the review rule and record the decision with the rule that made it."""
        decision = "needs_review" if claim["amount"] > REVIEW_THRESHOLD else "auto_approvable"
        record(
            "claim.assessed",
            business_key=_key(claim),
            details={"decision": decision, "rule": f"amount > {REVIEW_THRESHOLD:g} needs a person's approval"},
        )
        return {**claim, "decision": decision}

    approve_payment = ApprovalOperator(
        task_id="approve_payment",
        subject="Approve payment of claim {{ params.claim_id }} ({{ params.amount }} EUR)?",
        body="Claim {{ params.claim_id }} of member {{ params.member_id }} needs a reviewer's approval.",
        response_timeout=timedelta(days=3),
    )

    # integrity-lint: ignore[unvalidated-handoff]: the schema-checked claim with the decision assess computed
    # from it by the review rule
    @task
    def release_payment(claim: dict[str, Any]) -> str:
        """Runs only after the approval: release the payment instruction."""
        instruction = f"PAY-{claim['claim_id']}"
        record(
            "claim.payment_released",
            business_key=_key(claim),
            details={"instruction": instruction, "amount": claim["amount"]},
        )
        return instruction

    assessed = assess(receive_claim())
    assessed >> approve_payment >> release_payment(assessed)


claim_review()
