"""Patient intake: registration, insurance verification and medical history, with the data validated between
every step.

Each hand-off is checked by ``ValidateDataOperator`` with ``on_failure="quarantine"``: a record that breaks a
row-level rule is written, with the reasons, to a new file in the quarantine folder (``[integrity]
quarantine_dir``, by default ``quarantine`` under ``AIRFLOW_HOME``; never a location from the run's conf), and
only the good records, exactly as they came in, flow on. The run fails only if more than half of a batch is
bad. The summaries in XCom show failing values only as fingerprints keyed with the integrity store's secret
salt (``samples="hashed"``): these are patient records. Every validation's full result is in the integrity
store and every validation and quarantine is an audit event under the business key ``intake-<run id>``.

``verify_insurance`` sends the registered patients' record numbers (and nothing else about them) to the
payer's eligibility service (``payer_eligibility_api``) in one inquiry keyed ``eligibility-intake-<run id>``:
a retry or a cleared task gets the stored answer back instead of asking again. When the payer provably did
nothing (refused the connection, answered 503), the same inquiry goes to a clearinghouse
(``eligibility_clearinghouse_api``) and ``fallback.used`` records why; an inquiry that may have reached the
payer (a timeout after sending) is never repeated elsewhere: the task fails for a person to look at.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_integrity.operators.http import IdempotentHttpOperator
from airflow_integrity.operators.validate import ValidateDataOperator

REGISTRATION_SUITE = {
    "name": "patient_registration",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "mrn"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "mrn"}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "mrn", "regex": r"^MRN-\d{6}$"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "date_of_birth"}},
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "email", "regex": "@"},
            "severity": "warning",
        },
    ],
}
COVERAGE_SUITE = {
    "name": "insurance_coverage",
    "expectations": [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "coverage", "value_set": ["active"]}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "copay", "min_value": 0, "max_value": 500},
        },
    ],
}

INTAKE_KEY = "intake-{{ run_id }}"


@dag(
    dag_id="patient_intake",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["integrity", "example", "validation"],
    doc_md=__doc__,
)
def patient_intake() -> None:
    @task
    def register_patients() -> list[dict[str, Any]]:
        """The day's registrations; MRN-100003 arrived without a date of birth."""
        return [
            {"mrn": "MRN-100001", "name": "Ada Byron", "date_of_birth": "1985-12-10", "email": "ada@example.org"},
            {
                "mrn": "MRN-100002",
                "name": "Alan Turing",
                "date_of_birth": "1972-06-23",
                "email": "alan@example.org",
            },
            {"mrn": "MRN-100003", "name": "Grace Hopper", "date_of_birth": None, "email": "grace@example.org"},
            {"mrn": "MRN-100004", "name": "Edsger Dijkstra", "date_of_birth": "1990-05-11", "email": "no email"},
        ]

    registrations = ValidateDataOperator(
        task_id="validate_registrations",
        data=register_patients(),
        suite=REGISTRATION_SUITE,
        on_failure="quarantine",  # to a new file in [integrity] quarantine_dir per run, task and try
        max_unexpected_fraction=0.5,
        samples="hashed",  # patient data: XCom shows keyed fingerprints of failing values, not the values
        business_key=INTAKE_KEY,
    )

    verify_insurance = IdempotentHttpOperator(
        task_id="verify_insurance",
        http_conn_id="payer_eligibility_api",
        fallback_http_conn_id="eligibility_clearinghouse_api",
        endpoint="/eligibility",
        method="POST",
        headers={"Content-Type": "application/json"},
        # The minimum necessary: record numbers only, never names or dates of birth.
        data=(
            "{{ {'mrns': ti.xcom_pull(task_ids='validate_registrations')['data'] | map(attribute='mrn') | list}"
            " | tojson }}"
        ),
        key="eligibility-" + INTAKE_KEY,
        business_key=INTAKE_KEY,
        namespace="eligibility",
        retries=2,
        retry_delay=timedelta(seconds=10),
    )

    coverage = ValidateDataOperator(
        task_id="validate_coverage",
        # Each patient's coverage as the payer (or the clearinghouse) answered it; MRN-100002's has expired.
        data="{{ ti.xcom_pull(task_ids='verify_insurance')['json']['results'] | tojson }}",
        suite=COVERAGE_SUITE,
        on_failure="quarantine",  # to a new file in [integrity] quarantine_dir per run, task and try
        max_unexpected_fraction=0.5,
        samples="hashed",  # patient data: XCom shows keyed fingerprints of failing values, not the values
        business_key=INTAKE_KEY,
    )

    @task
    def record_medical_history(validated: dict[str, Any]) -> list[str]:
        """Open a medical-history record for each patient who is registered and covered."""
        covered = json.loads(validated["data"])  # the good records, as text exactly as the payer wrote them
        return [patient["mrn"] for patient in covered]

    registrations >> verify_insurance >> coverage
    record_medical_history(coverage.output)


patient_intake()
