"""Quarantine split: rows rejected by critical row-level expectations go aside with their reasons."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_integrity.validation import split_rows, validate
from airflow_integrity.validation.quarantine import REASONS_COLUMN

pytestmark = pytest.mark.unit

NOT_NULL = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "patient_id"}}
AGE = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 0, "max_value": 120}}
INSURANCE = {
    "type": "expect_column_values_to_be_in_set",
    "kwargs": {"column": "insurance", "value_set": ["public", "private"]},
}
NAME_LENGTH = {
    "type": "expect_column_value_lengths_to_be_between",
    "kwargs": {"column": "name", "max_value": 10},
    "severity": "warning",
}

PATIENTS = pd.DataFrame(
    {
        "patient_id": [1, 2, None, 4, 5, 6],
        "name": ["Ada", "Grace", "Alan", "Katherine Johnson", "Edsger", "Barbara"],
        "age": [36, 185, 41, 101, -3, 50],
        "insurance": ["private", "public", "crypto", "public", "public", "private"],
    },
    index=[10, 11, 12, 13, 14, 15],  # split results keep the caller's labels
)


def test_bad_rows_are_split_off_with_every_reason():
    outcome = validate(PATIENTS, [NOT_NULL, AGE, INSURANCE, NAME_LENGTH], collect_unexpected_rows=True)
    split = split_rows(outcome)
    assert list(split.good.index) == [10, 13, 15]
    assert list(split.bad.index) == [11, 12, 14]
    assert split.bad.loc[12, REASONS_COLUMN] == (
        "#0 expect_column_values_to_not_be_null on patient_id; #2 expect_column_values_to_be_in_set on insurance"
    )
    assert split.reasons[1] == ["#1 expect_column_values_to_be_between on age"]
    assert split.bad_fraction == pytest.approx(3 / 6)
    assert split.unsplittable == []
    # The good rows are the caller's rows, untouched; the bad rows are complete plus the reasons.
    pd.testing.assert_frame_equal(split.good, PATIENTS.loc[[10, 13, 15]])
    pd.testing.assert_frame_equal(split.bad.drop(columns=[REASONS_COLUMN]), PATIENTS.loc[[11, 12, 14]])
    assert split.summary() == {
        "total_rows": 6,
        "good_rows": 3,
        "bad_rows": 3,
        "bad_fraction": 0.5,
        "unsplittable": [],
        "unsplittable_omitted": 0,
    }


def test_rows_failing_only_warnings_flow_on_unless_asked():
    outcome = validate(PATIENTS, [NOT_NULL, NAME_LENGTH], collect_unexpected_rows=True)
    assert outcome.summary["failed_by_severity"] == {"critical": 1, "warning": 1, "info": 0}
    assert list(split_rows(outcome).bad.index) == [12]
    with_warnings = split_rows(outcome, include_warnings=True)
    assert list(with_warnings.bad.index) == [12, 13]
    assert with_warnings.reasons[3] == ["#1 expect_column_value_lengths_to_be_between on name"]


def test_rows_a_mostly_expectation_tolerates_are_still_quarantined():
    mostly = {**AGE, "kwargs": {**AGE["kwargs"], "mostly": 0.5}}
    outcome = validate(PATIENTS, [mostly], collect_unexpected_rows=True)
    assert outcome.success
    assert list(split_rows(outcome).bad.index) == [11, 14]


def test_table_level_failures_cannot_be_split_and_are_listed():
    row_count = {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 100}}
    mean_age = {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "age", "max_value": 10}}
    outcome = validate(PATIENTS, [NOT_NULL, row_count, mean_age], collect_unexpected_rows=True)
    split = split_rows(outcome)
    assert [f["type"] for f in split.unsplittable] == [
        "expect_table_row_count_to_be_between",
        "expect_column_mean_to_be_between",
    ]
    assert list(split.bad.index) == [12]
    assert [u["index"] for u in split.summary()["unsplittable"]] == [1, 2]


def test_pair_and_multicolumn_expectations_split_rows_too():
    frame = pd.DataFrame({"billed": [10, 20, 30], "paid": [10, 25, 30], "a": [1, 2, 2], "b": [1, 3, 4]})
    suite = [
        {"type": "expect_column_pair_values_to_be_equal", "kwargs": {"column_A": "billed", "column_B": "paid"}},
        {"type": "expect_select_column_values_to_be_unique_within_record", "kwargs": {"column_list": ["a", "b"]}},
    ]
    split = split_rows(validate(frame, suite, collect_unexpected_rows=True))
    assert list(split.bad.index) == [0, 1]
    assert split.reasons[0] == ["#1 expect_select_column_values_to_be_unique_within_record on a, b"]
    assert split.reasons[1] == ["#0 expect_column_pair_values_to_be_equal on billed, paid"]


def test_a_clean_frame_splits_into_everything_good():
    outcome = validate(PATIENTS.dropna(), [NOT_NULL], collect_unexpected_rows=True)
    split = split_rows(outcome)
    assert len(split.good) == 5 and split.bad.empty and split.bad_fraction == 0.0
    assert REASONS_COLUMN in split.bad.columns


def test_split_needs_the_row_positions():
    with pytest.raises(ValueError, match=r"collect_unexpected_rows=True"):
        split_rows(validate(PATIENTS, [NOT_NULL]))


def test_split_refuses_a_frame_other_than_the_validated_one():
    outcome = validate(PATIENTS, [NOT_NULL], collect_unexpected_rows=True)
    with pytest.raises(ValueError, match="got a frame of 2 rows for an outcome of 6 rows"):
        split_rows(outcome, PATIENTS.head(2))
