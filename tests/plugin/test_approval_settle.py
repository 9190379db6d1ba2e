"""Which answers the API server holds, and for how long (the cluster test answers real approvals at once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_integrity.plugin.approval_settle import _ANSWER_PATH, Question, hold_seconds

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age", "settle", "held"),
    [
        (0.0, 5.0, 5.0),  # answered the moment it asked: the whole hold
        (1.5, 5.0, 3.5),
        (5.0, 5.0, 0.0),
        (3600.0, 5.0, 0.0),  # a person answering an hour later is not held
        (0.0, 0.0, 0.0),  # switched off
        (0.0, float("inf"), 0.0),  # a setting that cannot be waited out holds nothing
        (-30.0, 5.0, 5.0),  # a park stamped in the future (a skewed clock) never holds longer than settle
    ],
)
def test_an_answer_is_held_until_the_try_has_been_parked_settle_seconds(
    age: float, settle: float, held: float
) -> None:
    question = Question(parked_at=NOW - timedelta(seconds=age), deadline=None)
    assert hold_seconds(question, settle, NOW) == pytest.approx(held)


def test_an_answer_before_the_park_is_held_the_whole_settle_time() -> None:
    assert hold_seconds(Question(parked_at=None, deadline=None), 5.0, NOW) == 5.0


def test_a_held_answer_is_let_through_a_second_before_the_response_deadline() -> None:
    question = Question(parked_at=NOW, deadline=NOW + timedelta(seconds=3))
    assert hold_seconds(question, 10.0, NOW) == pytest.approx(2.0)
    past = Question(parked_at=NOW, deadline=NOW - timedelta(seconds=1))
    assert hold_seconds(past, 10.0, NOW) == 0.0


def test_no_question_means_no_hold() -> None:
    assert hold_seconds(None, 5.0, NOW) == 0.0


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/api/v2/dags/loan_origination/dagRuns/manual__2026-12-05T11:40:51.123+00:00/taskInstances/"
            "underwriter_decision/-1/hitlDetails",
            ("loan_origination", "manual__2026-12-05T11:40:51.123+00:00", "underwriter_decision", "-1"),
        ),
        ("/airflow/api/v2/dags/d/dagRuns/r/taskInstances/t.x/3/hitlDetails/", ("d", "r", "t.x", "3")),
    ],
)
def test_answers_are_recognised_under_any_base_path(path: str, expected: tuple[str, ...]) -> None:
    match = _ANSWER_PATH.search(path)
    assert match is not None
    assert (match["dag_id"], match["run_id"], match["task_id"], match["map_index"]) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/dags/d/dagRuns/r/taskInstances/t/-1",
        "/api/v2/dags/d/dagRuns/r/taskInstances/t/-1/hitlDetails/tries/1",
        "/api/v2/dags/d/dagRuns/r/taskInstances/t/x/hitlDetails",
        "/api/v2/dags/d/dagRuns/r/taskInstances/t/\u0663/hitlDetails",  # not an ASCII digit
        "/api/v2/dags/d/dagRuns/r/taskInstances/t/1/hitlDetails\n",
        "/api/v2/dags/d/dagRuns/r/taskInstances/t/" + "9" * 5000 + "/hitlDetails",
        "/api/v2/hitlDetails",
    ],
)
def test_other_paths_are_not_held(path: str) -> None:
    assert _ANSWER_PATH.search(path) is None
