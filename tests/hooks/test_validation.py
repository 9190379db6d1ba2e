"""The hook validates, keeps the full result in the store (never in the summary), audits, and applies policies."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import text

from airflow_integrity.compat import AirflowFailException
from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.hooks.validation import enforce, fail_on_bad_input
from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.validation.quarantine import REASONS_COLUMN
from tests.hooks.validation_helpers import ROWS, SUITE, TABLE_LEVEL_SUITE, events

pytestmark = pytest.mark.integration


def test_full_result_is_stored_by_id_and_the_validation_audited(store_conn_env: str) -> None:
    hook = IntegrityCheckHook()
    run = hook.validate_data(ROWS, SUITE, business_key="intake-1")

    summary = json.loads(json.dumps(run.summary))  # JSON all the way
    assert (summary["status"], summary["success"]) == ("failed", False)
    by_column = {f["column"]: f for f in summary["failures"]}
    assert by_column["age"]["unexpected_count"] == 1 and by_column["age"]["samples"] == [150]
    assert by_column["email"]["severity"] == "warning" and by_column["email"]["samples"] == ["no-mail"]
    assert "results" not in summary  # the full result stays out of the summary

    stored = hook.get_validation_result(run.result_id)
    assert stored is not None
    assert (stored.status, stored.success, stored.suite_name) == ("failed", False, run.summary["suite"]["name"])
    assert stored.data_fingerprint == summary["data"]["fingerprint"]
    assert stored.summary == summary
    assert len(stored.full_result["results"]) == len(SUITE)
    assert stored.full_result == run.outcome.full_result
    assert hook.get_validation_result("00000000-0000-0000-0000-000000000000") is None

    [event] = events(store_conn_env, "validation.failed")
    assert event.business_key == "intake-1"
    assert event.details["result_id"] == run.result_id
    assert event.details["data_fingerprint"] == summary["data"]["fingerprint"]
    assert event.details["suite_fingerprint"] == summary["suite"]["fingerprint"]
    assert event.details["failed_by_severity"] == {"critical": 1, "warning": 1, "info": 0}
    assert (event.details["success"], event.details["rows"]) == (False, 3)
    assert "bob@example.org" not in json.dumps(event.details)  # fingerprints, never the data

    # Stored results are append-only: the database refuses to change or delete them.
    store = IntegrityStore(StoreLocation.from_url(store_conn_env))
    for statement in (
        "UPDATE integrity_validation_result SET status = 'passed'",
        "DELETE FROM integrity_validation_result",
    ):
        with pytest.raises(Exception, match="append-only"), store.begin() as conn:
            conn.execute(text(statement))
    assert hook.get_validation_result(run.result_id) == stored
    store.engine.dispose()


def test_failed_warning_expectations_warn_and_never_fail(store_conn_env: str, capfd) -> None:
    hook = IntegrityCheckHook()
    run = hook.validate_data([ROWS[0], ROWS[2]], SUITE)
    assert (run.status, run.success) == ("warned", True)
    handoff = enforce(hook, run, on_failure="fail")
    assert handoff.run is run
    assert "no-mail" in "".join(capfd.readouterr())  # logged visibly
    [event] = events(store_conn_env, "validation.warned")
    assert event.details["result_id"] == run.result_id and event.details["success"] is True


@pytest.mark.requirement("alcoa.accurate")
def test_policies_fail_warn_quarantine(store_conn_env: str, tmp_path, capfd) -> None:
    hook = IntegrityCheckHook()
    run = hook.validate_data(ROWS, SUITE, collect_unexpected_rows=True)

    with pytest.raises(AirflowFailException) as failure:
        enforce(hook, run, on_failure="fail")
    assert "expect_column_values_to_be_between on age: 1 unexpected" in str(failure.value)
    assert run.result_id in str(failure.value)

    capfd.readouterr()
    assert enforce(hook, run, on_failure="warn").good is None
    logged = "".join(capfd.readouterr())
    assert "VALIDATION FAILED" in logged and "expect_column_values_to_be_between on age" in logged

    handoff = enforce(
        hook, run, on_failure="quarantine", quarantine_path=str(tmp_path / "q"), max_unexpected_fraction=0.5
    )
    assert handoff.good == [ROWS[0], ROWS[2]]  # a warning alone does not quarantine
    assert handoff.quarantine is not None and handoff.quarantine["bad_rows"] == 1
    written = pd.read_csv(handoff.quarantine["path"])
    assert written["patient_id"].tolist() == ["p2"]
    assert "expect_column_values_to_be_between on age" in written[REASONS_COLUMN][0]
    [event] = events(store_conn_env, "validation.quarantined")
    assert event.details["result_id"] == run.result_id and event.details["bad_rows"] == 1

    # More bad rows than allowed: the task fails, and the bad rows are in quarantine all the same.
    strict = tmp_path / "strict"
    with pytest.raises(AirflowFailException, match=r"more than max_unexpected_fraction=0\.2"):
        enforce(
            hook,
            run,
            on_failure="quarantine",
            quarantine_path=str(strict),
            quarantine_format="jsonl",
            max_unexpected_fraction=0.2,
        )
    [target] = strict.iterdir()
    assert target.suffix == ".jsonl" and pd.read_json(target, lines=True)["patient_id"].tolist() == ["p2"]

    # With quarantine_warnings, rows failing only a warning expectation are quarantined too.
    wide = enforce(
        hook,
        run,
        on_failure="quarantine",
        quarantine_path=str(tmp_path / "wide"),
        quarantine_warnings=True,
        max_unexpected_fraction=1.0,
    )
    assert wide.good == [ROWS[0]]


def test_quarantine_cannot_fix_a_table_level_failure(store_conn_env: str, tmp_path) -> None:
    hook = IntegrityCheckHook()
    run = hook.validate_data(ROWS, TABLE_LEVEL_SUITE, collect_unexpected_rows=True)
    with pytest.raises(AirflowFailException, match="judge the data as a whole"):
        enforce(hook, run, on_failure="quarantine", quarantine_path=str(tmp_path), max_unexpected_fraction=1.0)


def test_bad_suite_and_bad_data_are_not_retried_and_name_the_problem(store_conn_env: str) -> None:
    hook = IntegrityCheckHook()
    hook.get_store()  # migrated, so the audit trail can be read
    bad_suite = [{"type": "expect_column_values_to_be_postive", "kwargs": {"column": "age"}}]
    with pytest.raises(AirflowFailException, match=r"expectation #0 \(expect_column_values_to_be_postive\)"):
        fail_on_bad_input(lambda: hook.validate_data(ROWS, bad_suite))
    with pytest.raises(AirflowFailException, match="needs column 'agee' \\(did you mean 'age'\\?\\)"):
        fail_on_bad_input(
            lambda: hook.validate_data(
                ROWS, [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "agee"}}]
            )
        )
    with pytest.raises(AirflowFailException, match="not a table"):
        fail_on_bad_input(lambda: hook.validate_data(42, SUITE, label="return value of task 'x'"))
    assert events(store_conn_env) == []  # nothing ran, so nothing was recorded as validated
