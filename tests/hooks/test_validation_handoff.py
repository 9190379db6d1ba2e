"""What a validation hands on is what came in: the original records (or frame rows, or JSON text), selected by
position (sources the package reads itself: test_validation_handoff_sources.py).

No DataFrame round trip between the upstream task and the downstream one: a big integer next to a null stays
an integer, floats keep every digit, datetimes keep microseconds and time zone, nested values stay nested;
the quarantine file holds the original records too.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.hooks.validation import enforce
from airflow_integrity.validation.quarantine import REASONS_COLUMN

pytestmark = pytest.mark.integration

BIG = 9007199254740993  # 2**53 + 1: a float64 cannot hold it
# The second row's age is out of range (critical): it is quarantined, the others flow on.
EXACT = [
    {
        "id": BIG,
        "score": 0.12345678901234567,
        "seen": datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=timezone(timedelta(hours=2))),
        "tags": {"codes": ["E11.9", 7], "nested": {"deep": [1.5, None]}},
        "age": 34,
    },
    {
        "id": None,
        "score": 1 / 3,
        "seen": datetime(2024, 1, 2, 3, 4, 5, 999999, tzinfo=ZoneInfo("America/New_York")),
        "tags": [],
        "age": 150,
    },
    {
        "id": BIG + 2,
        "score": 2.220446049250313e-16,
        "seen": datetime(2023, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
        "tags": None,
        "age": 51,
    },
]
AGE = [
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 0, "max_value": 120}}
]


def _jsonable(record: dict) -> dict:
    return json.loads(json.dumps(record, default=lambda v: v.isoformat()))


def _quarantine(hook: IntegrityCheckHook, data, tmp_path, **options):  # type: ignore[no-untyped-def]
    run = hook.validate_data(data, AGE, collect_unexpected_rows=True)
    return enforce(
        hook, run, on_failure="quarantine", quarantine_path=str(tmp_path), max_unexpected_fraction=0.5, **options
    )


@pytest.mark.requirement("alcoa.original")
def test_records_flow_on_as_the_original_objects(store_conn_env: str, tmp_path) -> None:
    handoff = _quarantine(IntegrityCheckHook(), EXACT, tmp_path / "q", quarantine_format="jsonl")

    assert handoff.good == [EXACT[0], EXACT[2]]
    assert handoff.good[0] is EXACT[0] and handoff.good[1] is EXACT[2]  # the very objects, not copies
    assert handoff.good[0]["id"] == BIG and type(handoff.good[0]["id"]) is int

    # The quarantine file holds the original record (as JSON), plus the reasons.
    assert handoff.quarantine is not None
    with open(handoff.quarantine["path"]) as lines:
        [written] = [json.loads(line) for line in lines]
    assert written == {**_jsonable(EXACT[1]), REASONS_COLUMN: "#0 expect_column_values_to_be_between on age"}
    assert written["seen"] == "2024-01-02T03:04:05.999999-05:00"
    assert REASONS_COLUMN not in EXACT[1]  # the caller's record is not touched


def test_json_text_flows_on_as_the_text_of_its_records(store_conn_env: str, tmp_path) -> None:
    records = [json.dumps(_jsonable(r)) for r in EXACT]
    handoff = _quarantine(IntegrityCheckHook(), "[" + ", ".join(records) + "]", tmp_path / "q")
    assert handoff.good == f"[{records[0]},{records[2]}]"  # no number parsed: every digit as it came
    assert json.loads(handoff.good)[0]["id"] == BIG and json.loads(handoff.good)[0]["score"] == 0.12345678901234567


def test_the_quarantine_csv_holds_the_original_values(store_conn_env: str, tmp_path) -> None:
    handoff = _quarantine(IntegrityCheckHook(), [EXACT[1], EXACT[0]], tmp_path / "q")
    assert handoff.good == [EXACT[0]]
    assert handoff.quarantine is not None
    with open(handoff.quarantine["path"], newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert row["id"] == ""  # a null
    assert float(row["score"]) == 1 / 3 and row["score"] == repr(1 / 3)
    assert row["seen"] == "2024-01-02T03:04:05.999999-05:00"
    assert (row["tags"], row["age"]) == ("[]", "150")
    assert row[REASONS_COLUMN] == "#0 expect_column_values_to_be_between on age"


def test_a_frame_flows_on_as_its_own_rows(store_conn_env: str, tmp_path) -> None:
    frame = pd.DataFrame(EXACT, index=["a", "b", "c"])
    frame["id"] = pd.array([BIG, None, BIG + 2], dtype="Int64")
    handoff = _quarantine(IntegrityCheckHook(), frame, tmp_path / "q", quarantine_format="jsonl")
    assert isinstance(handoff.good, pd.DataFrame)
    pd.testing.assert_frame_equal(handoff.good, frame.iloc[[0, 2]])
    assert handoff.good["id"].tolist() == [BIG, BIG + 2]
    assert handoff.quarantine is not None
    with open(handoff.quarantine["path"]) as lines:
        [written] = [json.loads(line) for line in lines]
    assert written["score"] == 1 / 3 and written["age"] == 150 and written["id"] is None
    assert written["seen"] == "2024-01-02T03:04:05.999999-05:00"
