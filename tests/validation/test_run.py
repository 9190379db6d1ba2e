"""validate(): severity, the compact summary, the full result, and clear errors for bad data and bad suites."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pandas as pd
import pytest

from airflow_integrity.validation import (
    DataError,
    EmptyDataError,
    MissingColumnError,
    frame_fingerprint,
    frame_from_path,
    gx_runtime,
    validate,
)

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
SUITE_FILE = DATA / "patients_suite.json"

NOT_NULL = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "patient_id"}}
AGE = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 0, "max_value": 120}}


KEY = b"k" * 32


def _hmac(key: bytes, value: object) -> str:
    canonical = json.dumps(value, sort_keys=True, default=str, separators=(",", ":")).encode()
    return "hmac-sha256:" + hmac.new(key, canonical, hashlib.sha256).hexdigest()[:16]


def _with(entry: dict, severity: str) -> dict:
    return {**entry, "severity": severity}


def test_a_clean_file_passes_the_gx_suite_and_the_summary_says_so():
    outcome = validate(DATA / "patients_clean.csv", SUITE_FILE)
    summary = outcome.summary
    assert outcome.success and summary["success"] and summary["gx_success"]
    assert summary["statistics"] == {
        "evaluated_expectations": 6,
        "successful_expectations": 6,
        "unsuccessful_expectations": 0,
        "success_percent": 100.0,
    }
    assert summary["failures"] == [] and summary["failures_omitted"] == 0
    assert summary["suite"]["name"] == "intake.patients"
    assert summary["suite"]["fingerprint"] == outcome.suite.fingerprint
    expected_fingerprint = frame_fingerprint(frame_from_path(DATA / "patients_clean.csv"))["fingerprint"]
    assert summary["data"]["fingerprint"] == expected_fingerprint
    assert summary["data"]["rows"] == 4 and summary["data"]["kind"] == "content"


def test_a_dirty_file_fails_with_each_failed_expectation_described():
    outcome = validate(DATA / "patients_dirty.csv", SUITE_FILE)
    summary = outcome.summary
    assert not outcome.success and not summary["gx_success"]
    failed = {f["type"]: f for f in summary["failures"]}
    assert set(failed) == {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_value_lengths_to_be_between",
    }
    age = failed["expect_column_values_to_be_between"]
    assert age["column"] == "age" and age["severity"] == "critical"
    assert age["unexpected_count"] == 1 and age["unexpected_percent"] == pytest.approx(20.0)
    assert age["samples"] == [185]
    assert age["kwargs"] == {"min_value": 0.0, "max_value": 120.0}
    assert failed["expect_column_values_to_be_in_set"]["samples"] == ["crypto"]
    assert failed["expect_column_values_to_be_unique"]["unexpected_count"] == 2
    # Critical failures come first, then warnings; within a severity, suite order.
    severities = [f["severity"] for f in summary["failures"]]
    assert severities == sorted(severities, key=["critical", "warning", "info"].index)
    assert summary["failed_by_severity"] == {"critical": 4, "warning": 1, "info": 0}
    text = outcome.describe_failures()
    assert "4 of 6 expectations failed" not in text  # GX counts 5 unsuccessful: 4 critical + 1 warning
    assert "5 of 6 expectations failed (4 critical, 1 warning)" in text
    assert "[critical] #2 expect_column_values_to_be_between on age: 1 unexpected (20.00%); e.g. [185]" in text


@pytest.mark.parametrize("severity", ["warning", "info"])
def test_warning_and_info_failures_never_fail_the_outcome_but_are_reported(severity):
    records = [{"patient_id": 1, "age": 130}, {"patient_id": 2, "age": 40}]
    outcome = validate(records, [NOT_NULL, _with(AGE, severity)])
    assert outcome.success is True
    assert outcome.summary["gx_success"] is False  # GX itself ignores severity
    [failure] = outcome.failures
    assert failure["severity"] == severity and failure["unexpected_count"] == 1
    assert outcome.summary["failed_by_severity"][severity] == 1


def test_a_critical_failure_fails_even_when_warnings_pass():
    records = [{"patient_id": None, "age": 40}]
    outcome = validate(records, [NOT_NULL, _with(AGE, "warning")], allow_empty=False)
    assert outcome.success is False
    assert [f["severity"] for f in outcome.failures] == ["critical"]


def test_samples_are_at_most_five_clipped_or_hashed_or_left_out():
    records = [{"patient_id": i, "note": "x" * 100 + str(i)} for i in range(30)]
    suite = [{"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "note", "value_set": ["ok"]}}]
    [failure] = validate(records, suite).failures
    assert failure["unexpected_count"] == 30
    assert len(failure["samples"]) == 5
    assert failure["samples"][0] == "x" * 40 + "...(+61 chars)"
    [hashed] = validate(records, suite, samples="hashed", sample_key=KEY).failures
    assert hashed["samples"][0] == _hmac(KEY, "x" * 100 + "0")
    assert all(s.startswith("hmac-sha256:") and len(s) == 28 for s in hashed["samples"])
    assert not any("xxx" in s for s in hashed["samples"])
    [none] = validate(records, suite, samples="none").failures
    assert "samples" not in none
    [two] = validate(records, suite, sample_size=2).failures
    assert len(two["samples"]) == 2


def test_hashed_samples_are_keyed_and_need_the_key():
    # A low-entropy value (an age, a diagnosis code) hashed without a secret is found by trying every value.
    records = [{"patient_id": 1, "age": 150}, {"patient_id": 2, "age": 7}]
    unkeyed = "sha256:" + hashlib.sha256(b"150").hexdigest()[:16]
    [hashed] = validate(records, [AGE], samples="hashed", sample_key=KEY).failures
    assert hashed["samples"] == [_hmac(KEY, 150)] and hashed["samples"][0] != unkeyed
    [other] = validate(records, [AGE], samples="hashed", sample_key=b"another store's salt").failures
    assert other["samples"] != hashed["samples"]
    with pytest.raises(ValueError, match=r"samples='hashed' needs sample_key="):
        validate(records, [AGE], samples="hashed")


def test_observed_values_of_column_aggregates_follow_the_samples_setting():
    records = [{"patient_id": 1, "age": 150}, {"patient_id": 2, "age": 7}]
    suite = [
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "age", "max_value": 120}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 1}},
    ]
    by_type = {f["type"]: f for f in validate(records, suite).failures}
    assert by_type["expect_column_max_to_be_between"]["observed_value"] == 150
    hashed = {f["type"]: f for f in validate(records, suite, samples="hashed", sample_key=KEY).failures}
    assert hashed["expect_column_max_to_be_between"]["observed_value"] == _hmac(KEY, 150)
    assert hashed["expect_table_row_count_to_be_between"]["observed_value"] == 2  # a count, not a value
    none = {f["type"]: f for f in validate(records, suite, samples="none").failures}
    assert "observed_value" not in none["expect_column_max_to_be_between"]
    assert none["expect_table_row_count_to_be_between"]["observed_value"] == 2
    assert "150" not in json.dumps([hashed, none])


def test_the_summary_stays_under_its_bound_and_counts_what_it_dropped():
    columns = {f"c{i}": [None, "v" * 200] for i in range(40)}
    suite = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": c}} for c in columns]
    outcome = validate(columns, suite, max_summary_bytes=2048)
    summary = outcome.summary
    assert len(json.dumps(summary)) <= 2048
    assert summary["statistics"]["unsuccessful_expectations"] == 40
    assert 0 < summary["failures_omitted"] < 40
    assert len(summary["failures"]) + summary["failures_omitted"] == 40
    assert all("samples" not in f and f["samples_omitted"] == 1 for f in summary["failures"])
    roomy = validate(columns, suite)
    assert len(json.dumps(roomy.summary)) <= 16 * 1024
    assert roomy.summary["failures_omitted"] == 0 and len(roomy.summary["failures"]) == 40
    assert roomy.describe_failures(limit=3).endswith("... and 37 more failed expectations (see the full result).")


def test_long_argument_lists_are_clipped_with_a_count():
    suite = [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "a", "value_set": list(range(50))}}
    ]
    [failure] = validate({"a": [99]}, suite).failures
    assert failure["kwargs"]["value_set"][:10] == list(range(10))
    assert failure["kwargs"]["value_set"][10] == "...(+40 more)"


def test_summary_and_full_result_are_json_and_the_full_result_is_gx_s():
    outcome = validate(DATA / "patients_dirty.csv", SUITE_FILE)
    json.dumps(outcome.summary, allow_nan=False)
    json.dumps(outcome.full_result)
    full = outcome.full_result
    assert full["statistics"] == outcome.summary["statistics"]
    assert full["suite_name"] == "intake.patients"
    assert len(full["results"]) == 6
    assert full["meta"]["active_batch_definition"]["datasource_name"] == "integrity_frames"


def test_long_row_lists_in_the_full_result_are_cut_with_a_count():
    frame = pd.DataFrame({"patient_id": [None] * 50})
    outcome = validate(frame, [NOT_NULL], result_format="COMPLETE", full_result_list_limit=10)
    [result] = outcome.full_result["results"]
    assert len(result["result"]["unexpected_index_list"]) == 10
    assert result["result"]["unexpected_index_list_omitted"] == 40
    assert result["result"]["unexpected_count"] == 50


def test_suite_parameters_are_passed_to_gx():
    suite = [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "age", "min_value": 0, "max_value": {"$PARAMETER": "max_age"}},
        }
    ]
    records = [{"age": 70}, {"age": 90}]
    assert validate(records, suite, expectation_parameters={"max_age": 100}).success
    strict = validate(records, suite, expectation_parameters={"max_age": 80})
    assert not strict.success and strict.failures[0]["unexpected_count"] == 1


def test_the_gx_context_is_created_once_per_process_and_reused():
    validate([{"patient_id": 1}], [NOT_NULL])
    first = gx_runtime.runtime()
    validate([{"patient_id": 2}], [NOT_NULL])
    assert gx_runtime.runtime() is first


def test_gx_does_not_hash_a_frame_again_that_the_fingerprint_covers():
    from great_expectations.execution_engine import pandas_execution_engine

    threshold = pandas_execution_engine.HASH_THRESHOLD
    outcome = validate([{"patient_id": 1}], [NOT_NULL])
    assert "pandas_data_fingerprint" not in outcome.full_result["meta"]["batch_markers"]
    assert outcome.summary["data"]["fingerprint"].startswith("sha256:")
    assert threshold == pandas_execution_engine.HASH_THRESHOLD  # GX's setting is back for everyone else


# Bad data and suites that do not fit the data ----------------------------------------------------------------


def test_empty_data_is_refused_unless_allowed():
    with pytest.raises(EmptyDataError, match=r"has no rows \(columns: patient_id\).*allow_empty=True"):
        validate(pd.DataFrame({"patient_id": []}), [NOT_NULL], label="return value of task 'register'")
    outcome = validate(pd.DataFrame({"patient_id": []}), [NOT_NULL], allow_empty=True)
    assert outcome.success and outcome.summary["data"]["rows"] == 0


def test_a_missing_column_names_the_expectation_the_column_and_the_close_match():
    suite = [NOT_NULL, {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "Name"}}]
    with pytest.raises(MissingColumnError) as error:
        validate([{"patient_id": 1, "name": "Ada"}], suite, suite_name="intake")
    message = str(error.value)
    assert "Suite 'intake' does not fit data" in message
    assert (
        "expectation #1 (expect_column_values_to_not_be_null) needs column 'Name' (did you mean 'name'?)"
        in message
    )
    assert "The data has columns 'patient_id', 'name'" in message


def test_a_missing_column_can_be_reported_as_a_failed_expectation_instead():
    suite = [NOT_NULL, {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "gone"}}]
    outcome = validate([{"patient_id": 1}], suite, on_missing_column="fail")
    assert not outcome.success
    [failure] = outcome.failures
    assert failure["index"] == 1 and 'The column "gone" in BatchData does not exist' in failure["error"]


def test_values_of_the_wrong_type_are_reported_with_gx_s_error():
    outcome = validate([{"age": "old"}, {"age": "young"}], [AGE])
    [failure] = outcome.failures
    assert not outcome.success
    assert failure.get("error")


def test_data_that_is_not_serialisable_is_named():
    with pytest.raises(DataError, match=r"column 'tags', row 1, holds set .*not serialisable"):
        validate(
            [{"tags": ["a"]}, {"tags": {"b"}}], [{"type": "expect_column_to_exist", "kwargs": {"column": "tags"}}]
        )


def test_data_that_is_not_a_table_is_named():
    with pytest.raises(DataError, match="return value of task 'extract' is an int"):
        validate(3, [NOT_NULL], label="return value of task 'extract'")


@pytest.mark.parametrize("result_format", ["BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE"])
def test_every_gx_result_format_gives_the_same_verdict_and_statistics(result_format):
    reference = validate(DATA / "patients_dirty.csv", SUITE_FILE)
    outcome = validate(DATA / "patients_dirty.csv", SUITE_FILE, result_format=result_format)
    assert outcome.summary["result_format"] == result_format
    assert outcome.summary["statistics"] == reference.summary["statistics"]
    assert [f["index"] for f in outcome.failures] == [f["index"] for f in reference.failures]
    assert outcome.summary["data"]["source"].endswith("patients_dirty.csv'")


def test_an_empty_file_is_named_in_the_error(tmp_path: Path):
    (tmp_path / "intake.csv").write_text("patient_id,name\n")
    with pytest.raises(EmptyDataError, match=r"file '.*intake\.csv' has no rows \(columns: patient_id, name\)"):
        validate(tmp_path / "intake.csv", [NOT_NULL])
