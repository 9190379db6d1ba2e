"""The meaning of a signature (21 CFR Part 11 §11.50(a)(3)) for each kind of human-in-the-loop task."""

from __future__ import annotations

import pytest
from airflow.providers.standard.operators.hitl import (
    ApprovalOperator,
    HITLBranchOperator,
    HITLEntryOperator,
    HITLOperator,
)

from airflow_integrity.signatures import declared_meaning, signature_meaning

pytestmark = pytest.mark.unit


@pytest.mark.requirement("part11.11.50")
def test_airflow_s_operators_state_their_meaning() -> None:
    approval = ApprovalOperator(task_id="approve", subject="Pay?")
    assert signature_meaning(approval, ["Approve"]) == "approval"
    assert signature_meaning(approval, ["Reject"]) == "rejection"
    branch = HITLBranchOperator(task_id="route", subject="Where?", options=["a", "b"])
    assert signature_meaning(branch, ["a"]) == "decision"
    entry = HITLEntryOperator(task_id="enter", subject="Your data")
    assert signature_meaning(entry, ["OK"]) == "data entry"


def test_a_plain_question_states_none_until_its_author_declares_one() -> None:
    question = HITLOperator(task_id="ask", subject="Which?", options=["a", "b"])
    assert declared_meaning(question) is None
    assert signature_meaning(question, ["a"]) == "review"  # what the trail records meanwhile
    question.signature_meaning = "verification"
    assert declared_meaning(question) == "verification"
    assert signature_meaning(question, ["a"]) == "verification"
    question.signature_meaning = "   "
    assert declared_meaning(question) is None
