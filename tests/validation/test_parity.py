"""Parity: our summary reports what Great Expectations itself reports when called directly on the same data."""

from __future__ import annotations

import json
from pathlib import Path

import great_expectations as gx
import numpy as np
import pandas as pd
import pytest
from great_expectations.expectations.metadata_types import FailureSeverity

from airflow_integrity.validation import validate

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"

COLUMNS = ["patient_id", "name", "age", "insurance"]
DATASETS = {
    "clean": pd.DataFrame(
        {
            "patient_id": [1, 2, 3, 4],
            "name": ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Katherine Johnson"],
            "age": [36, 85, 41, 101],
            "insurance": ["private", "public", "private", "public"],
        }
    ),
    "dirty": pd.read_csv(DATA / "patients_dirty.csv"),
    "empty": pd.DataFrame({c: pd.Series([], dtype="float64" if c != "name" else "object") for c in COLUMNS}),
    "nulls": pd.DataFrame(
        {
            "patient_id": [1.0, np.nan, 3.0],
            "name": [None, None, None],
            "age": [np.nan, 50.0, np.nan],
            "insurance": ["public", None, "private"],
        }
    ),
    "wrong_types": pd.DataFrame(
        {
            "patient_id": ["one", "two", "three"],
            "name": [1, 2, 3],
            "age": ["thirty", "forty", "fifty"],
            "insurance": [True, False, True],
        }
    ),
}

INLINE = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "patient_id"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 0, "max_value": 120}},
    {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": "insurance", "value_set": ["public", "private"]},
    },
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "patient_id", "mostly": 0.5}},
    {
        "type": "expect_column_value_lengths_to_be_between",
        "kwargs": {"column": "name", "max_value": 12},
        "severity": "info",
    },
    {
        "type": "expect_column_mean_to_be_between",
        "kwargs": {"column": "age", "min_value": 18},
        "severity": "warning",
    },
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
    {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": COLUMNS}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "name", "regex": "^[A-Z]"}},
]
SUITES = {
    "gx_file": json.loads((DATA / "patients_suite.json").read_text()),
    "inline": {"name": "inline", "expectations": INLINE},
}


@pytest.fixture(scope="module")
def direct_batches():  # type: ignore[no-untyped-def]
    """GX on its own: an ephemeral context, a pandas dataframe asset, the documented batch.validate call."""
    context = gx.get_context(mode="ephemeral")
    return (
        context.data_sources.add_pandas("direct")
        .add_dataframe_asset("df")
        .add_batch_definition_whole_dataframe("b")
    )


def _gx_directly(direct_batches, suite: dict, frame: pd.DataFrame):  # type: ignore[no-untyped-def]
    expectations = [{k: v for k, v in e.items() if k != "id"} for e in suite["expectations"]]
    gx_suite = gx.ExpectationSuite(name=suite["name"], expectations=expectations)
    assert len(gx_suite.expectations) == len(expectations)
    batch = direct_batches.get_batch(batch_parameters={"dataframe": frame})
    return batch.validate(gx_suite, result_format="SUMMARY")


def _key(expectation_type: str, kwargs: dict) -> str:
    return json.dumps([expectation_type, {k: v for k, v in kwargs.items() if k != "batch_id"}], sort_keys=True)


@pytest.mark.requirement("alcoa.accurate")
@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("suite_name", list(SUITES))
def test_summary_success_and_statistics_equal_gx_called_directly(direct_batches, suite_name, dataset):
    suite, frame = SUITES[suite_name], DATASETS[dataset]
    direct = _gx_directly(direct_batches, suite, frame)
    outcome = validate(frame, suite, allow_empty=True, on_missing_column="fail")
    summary = outcome.summary

    assert summary["statistics"] == direct.statistics
    assert summary["gx_success"] == direct.success
    # Severity: only a failed critical expectation fails the outcome; GX reports the highest failed severity.
    assert summary["success"] == (direct.get_max_severity_failure() != FailureSeverity.CRITICAL)

    direct_failed = {
        _key(r.expectation_config.type, r.expectation_config.kwargs): r for r in direct.results if not r.success
    }
    ours_failed = {
        _key(f["type"], {**outcome.suite.expectations[f["index"]].kwargs}): f for f in summary["failures"]
    }
    assert set(ours_failed) == set(direct_failed)
    for key, failure in ours_failed.items():
        gx_result = direct_failed[key].result or {}
        assert failure.get("unexpected_count") == gx_result.get("unexpected_count")
        assert failure.get("unexpected_percent") == gx_result.get("unexpected_percent")
        assert failure["severity"] == direct_failed[key].expectation_config.severity.value
        if direct_failed[key].exception_info.get("raised_exception") or any(
            isinstance(v, dict) and v.get("raised_exception") for v in direct_failed[key].exception_info.values()
        ):
            assert failure.get("error")


def test_the_parity_matrix_covers_passes_failures_severities_and_gx_errors():
    """Guard against a parity matrix that proves nothing: it holds each kind of outcome."""

    def summary(suite: str, dataset: str) -> dict:
        return validate(DATASETS[dataset], SUITES[suite], allow_empty=True, on_missing_column="fail").summary

    assert summary("gx_file", "clean")["gx_success"]
    assert not summary("gx_file", "dirty")["success"]
    only_info = summary("inline", "clean")
    assert only_info["success"] and not only_info["gx_success"]
    assert [f["severity"] for f in only_info["failures"]] == ["info"]
    assert any(f.get("error") for f in summary("inline", "wrong_types")["failures"])
