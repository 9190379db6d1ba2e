"""Which Execution API requests are a supervisor's report of a task end that the task could not record."""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_integrity.plugin.task_end_watch import reported_end

pytestmark = pytest.mark.unit
TI = uuid.uuid4()
PATH = f"/execution/task-instances/{TI}/state"


def _body(**payload: object) -> bytes:
    return json.dumps(payload).encode()


def test_a_finish_report_of_a_failure_is_recognised() -> None:
    body = _body(state="failed", end_date="2026-11-28T09:00:00Z", rendered_map_index=None)
    assert reported_end(PATH, body) == (TI, "failed")
    assert reported_end(PATH, _body(state="skipped", end_date="2026-11-28T09:00:00Z")) == (TI, "skipped")


@pytest.mark.parametrize(
    "payload",
    [
        # A retry and a success are reported by the task itself (RetryTask / SucceedTask): its listener saw them.
        {"state": "up_for_retry", "end_date": "2026-11-28T09:00:00Z", "retry_delay_seconds": 5},
        {"state": "success", "end_date": "2026-11-28T09:00:00Z", "task_outlets": [], "outlet_events": []},
        {"state": "deferred", "classpath": "x", "trigger_kwargs": {}, "next_method": "execute_complete"},
        {"state": "failed", "end_date": "2026-11-28T09:00:00Z", "unexpected": 1},
    ],
)
def test_other_state_changes_are_left_alone(payload: dict) -> None:
    assert reported_end(PATH, _body(**payload)) is None


def test_other_paths_and_broken_bodies_are_left_alone() -> None:
    assert reported_end(f"/execution/task-instances/{TI}/heartbeat", _body(state="failed")) is None
    assert reported_end("/execution/task-instances/not-a-uuid/state", _body(state="failed")) is None
    assert reported_end(PATH, b"{not json") is None
    assert reported_end(PATH, b"") is None
