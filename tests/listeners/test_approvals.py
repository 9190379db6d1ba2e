"""A human-in-the-loop response becomes a signature event (21 CFR Part 11 §11.50), from the real operators."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from airflow_integrity.listeners.approvals import APPROVAL_EVENT, TIMEOUT_EVENT, approval_event

pytestmark = pytest.mark.unit
ANSWERED_AT = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def _response(*chosen: str, params_input: dict | None = None) -> dict:
    return {
        "chosen_options": list(chosen),
        "params_input": params_input or {},
        "responded_at": ANSWERED_AT,
        "responded_by_user": {"id": "u-17", "name": "Dr. Ada Reviewer"},
    }


@pytest.mark.requirement("alcoa.attributable", "annex11.14", "part11.11.50")
def test_an_approval_records_the_printed_name_time_and_meaning() -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    op = ApprovalOperator(task_id="approve", subject="Pay claim 42?")
    op.execute_complete(context={}, event=_response("Approve"))  # type: ignore[arg-type]

    event_type, signer, details = approval_event(op)  # type: ignore[misc]
    assert event_type == APPROVAL_EVENT and signer == "Dr. Ada Reviewer"
    assert details["signature"] == {
        "printed_name": "Dr. Ada Reviewer",
        "user_id": "u-17",
        "signed_at": ANSWERED_AT.isoformat(),
        "meaning": "approval",
    }
    assert details["subject"] == "Pay claim 42?" and details["chosen_options"] == ["Approve"]
    assert details["approved"] is True and details["operator"] == "ApprovalOperator"


@pytest.mark.requirement("part11.11.50")
def test_a_rejection_is_signed_with_its_own_meaning_even_when_the_task_fails() -> None:
    from airflow.providers.standard.exceptions import HITLRejectException
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    op = ApprovalOperator(task_id="approve", subject="Pay claim 43?", fail_on_reject=True)
    with pytest.raises(HITLRejectException):
        op.execute_complete(context={}, event=_response("Reject"))  # type: ignore[arg-type]
    _, _, details = approval_event(op)  # type: ignore[misc]
    assert details["signature"]["meaning"] == "rejection" and details["approved"] is False


def test_a_review_with_entered_values_keeps_their_fingerprint_not_the_values() -> None:
    from airflow.providers.standard.operators.hitl import HITLOperator

    op = HITLOperator(
        task_id="review", subject="Diagnosis code?", options=["Accept", "Return"], params={"code": "x"}
    )
    op.execute_complete(context={}, event=_response("Accept", params_input={"code": "E11.9"}))  # type: ignore[arg-type]
    _, _, details = approval_event(op)  # type: ignore[misc]
    assert details["signature"]["meaning"] == "review"
    assert details["params_input_sha256"].startswith("sha256:")
    assert "E11.9" not in str(details)


def test_no_event_before_a_response_and_a_timeout_is_recorded_without_a_signer() -> None:
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    assert approval_event(BashOperator(task_id="b", bash_command="true")) is None
    op = ApprovalOperator(task_id="approve", subject="Pay?")
    assert approval_event(op) is None
    op.hitl_summary_extra["error_type"] = "timeout"
    event_type, signer, details = approval_event(op)  # type: ignore[misc]
    assert (event_type, signer, details["subject"]) == (TIMEOUT_EVENT, None, "Pay?")
    assert "signature" not in details


def test_a_timeout_that_took_the_defaults_is_recorded_with_the_decision_and_no_signer() -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    op = ApprovalOperator(task_id="approve", subject="Pay?", defaults="Reject")
    event = {"chosen_options": ["Reject"], "params_input": {}, "responded_at": ANSWERED_AT}
    op.execute_complete(context={}, event={**event, "responded_by_user": None})  # type: ignore[arg-type]
    event_type, signer, details = approval_event(op)  # type: ignore[misc]
    assert (event_type, signer) == (TIMEOUT_EVENT, None)
    assert details["chosen_options"] == ["Reject"] and details["approved"] is False
    assert "signature" not in details
