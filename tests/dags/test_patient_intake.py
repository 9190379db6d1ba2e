"""The patient-intake example: bad records are quarantined with reasons, good ones flow on, all is recorded."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.store.validation_results import sample_key
from airflow_integrity.validation.quarantine import REASONS_COLUMN
from airflow_integrity.validation.summary import keyed_fingerprint
from tests.dag_runs import load_example_dag
from tests.demo_services import call, demo_services
from tests.hooks.validation_helpers import events

pytestmark = pytest.mark.integration


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch):
    """The demo payer and clearinghouse, reached through the DAG's connections; yields their URL."""
    with demo_services() as (url, connections):
        for name, value in connections.items():
            monkeypatch.setenv(name, value)
        yield url


@pytest.mark.requirement("alcoa.accurate")
def test_patient_intake_quarantines_bad_records_and_hands_on_the_good(
    airflow_db, tmp_path, monkeypatch, services
) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    store_url = f"sqlite:///{tmp_path / 'integrity.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
    quarantine = tmp_path / "quarantine"
    monkeypatch.setenv("AIRFLOW__INTEGRITY__QUARANTINE_DIR", str(quarantine))
    # Whoever triggers the run cannot choose where patient rows go: the DAG takes no location from its conf.
    elsewhere = tmp_path / "chosen-by-whoever-triggered"
    run = load_example_dag("patient_intake").test(
        run_conf={"quarantine_dir": str(elsewhere), "quarantine_path": str(elsewhere)}
    )

    assert run.state == DagRunState.SUCCESS
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert {ti.state for ti in tis.values()} == {TaskInstanceState.SUCCESS}

    assert not elsewhere.exists()
    files = {path.name.split("__")[1]: pd.read_csv(path) for path in quarantine.iterdir()}
    assert set(files) == {"validate_registrations", "validate_coverage"}
    registrations = files["validate_registrations"]
    assert registrations["mrn"].tolist() == ["MRN-100003"]
    assert registrations[REASONS_COLUMN].tolist() == ["#3 expect_column_values_to_not_be_null on date_of_birth"]
    coverage = files["validate_coverage"]
    assert coverage["mrn"].tolist() == ["MRN-100002"]
    assert coverage[REASONS_COLUMN].tolist() == ["#0 expect_column_values_to_be_in_set on coverage"]

    # Only good rows reached each next step; the warning (no email) did not stop MRN-100004.
    insured = tis["verify_insurance"].xcom_pull(task_ids="verify_insurance")["json"]["results"]
    assert [row["mrn"] for row in insured] == ["MRN-100001", "MRN-100002", "MRN-100004"]
    # One eligibility inquiry, to the payer; no fallback was needed.
    assert call(services, "/stats")["done"] == {"/payer/eligibility": 1}
    inquiry = tis["verify_insurance"].xcom_pull(task_ids="verify_insurance")
    assert inquiry["json"]["checked_by"] == "payer" and "fallback" not in inquiry
    history = tis["record_medical_history"].xcom_pull(task_ids="record_medical_history")
    assert history == ["MRN-100001", "MRN-100004"]

    hook = IntegrityCheckHook()
    for task_id, suite in (
        ("validate_registrations", "patient_registration"),
        ("validate_coverage", "insurance_coverage"),
    ):
        summary = tis[task_id].xcom_pull(task_ids=task_id)["summary"]
        stored = hook.get_validation_result(summary["result_id"])
        assert stored is not None and stored.suite_name == suite and stored.status == "failed"
        assert stored.identity["task_id"] == task_id and len(stored.full_result["results"]) > 0

    # Patient data: the summaries in XCom show fingerprints keyed with the store's salt, never the values.
    registrations_summary = tis["validate_registrations"].xcom_pull(task_ids="validate_registrations")["summary"]
    coverage_summary = tis["validate_coverage"].xcom_pull(task_ids="validate_coverage")["summary"]
    key = sample_key(hook.get_store())
    email = next(f for f in registrations_summary["failures"] if f.get("column") == "email")
    assert email["samples"] == [keyed_fingerprint("no email", key)]
    in_set = next(f for f in coverage_summary["failures"] if f.get("column") == "coverage")
    assert in_set["samples"] == [keyed_fingerprint("expired", key)]
    shown = json.dumps([registrations_summary, coverage_summary])
    assert "no email" not in shown and "expired" not in shown and "hmac-sha256:" in shown

    recorded = [e for e in events(store_url) if e.event_type.startswith("validation.")]
    assert [(e.task_id, e.event_type) for e in recorded] == [
        ("validate_registrations", "validation.failed"),
        ("validate_registrations", "validation.quarantined"),
        ("validate_coverage", "validation.failed"),
        ("validate_coverage", "validation.quarantined"),
    ]
    assert {e.business_key for e in recorded} == {f"intake-{run.run_id}"}


def test_with_the_payer_down_the_inquiry_goes_once_to_the_clearinghouse(
    airflow_db, tmp_path, monkeypatch, services
) -> None:
    from airflow.utils.state import DagRunState

    store_url = f"sqlite:///{tmp_path / 'integrity.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
    monkeypatch.setenv("AIRFLOW__INTEGRITY__QUARANTINE_DIR", str(tmp_path / "quarantine"))
    call(services, "/control/down", {"system": "payer", "down": True})  # answers 503, does nothing

    dag = load_example_dag("patient_intake")
    run = dag.test()

    assert run.state == DagRunState.SUCCESS
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    inquiry = tis["verify_insurance"].xcom_pull(task_ids="verify_insurance")
    assert inquiry["json"]["checked_by"] == "clearinghouse"
    assert inquiry["fallback"]["http_conn_id"] == "eligibility_clearinghouse_api"
    assert call(services, "/stats")["done"] == {"/clearinghouse/eligibility": 1}
    history = tis["record_medical_history"].xcom_pull(task_ids="record_medical_history")
    assert history == ["MRN-100001", "MRN-100004"]

    (used,) = [e for e in events(store_url) if e.event_type == "fallback.used"]
    assert used.task_id == "verify_insurance" and used.business_key == f"intake-{run.run_id}"
    assert "503" in used.details["reason"]
    assert (used.details["primary"], used.details["fallback"]) == (
        "payer_eligibility_api",
        "eligibility_clearinghouse_api",
    )
