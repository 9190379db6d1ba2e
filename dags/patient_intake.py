"""Patient intake: registration, insurance verification and medical history, with the data validated between
every step.

Each hand-off is checked by ``ValidateDataOperator`` with ``on_failure="quarantine"``: a record that breaks a
row-level rule is written, with the reasons, to a new file in the quarantine folder (``[integrity]
quarantine_dir``, by default ``quarantine`` under ``AIRFLOW_HOME``; never a location from the run's conf), and
only the good records, exactly as they came in, flow on. The run fails only if more than half of a batch is
bad. The summaries in XCom show failing values only as fingerprints keyed with the integrity store's secret
salt (``samples="hashed"``): these are patient records. Every validation's full result is in the integrity
store and every validation and quarantine is an audit event under the business key ``intake-<run id>``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

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

# Policy lookups a real DAG would make against the payer's eligibility API.
_PAYERS = {"MRN-100001": ("active", 20), "MRN-100002": ("expired", 0), "MRN-100004": ("active", 35)}


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
        business_key="intake-{{ run_id }}",
    )

    @task
    def verify_insurance(validated: dict[str, Any]) -> list[dict[str, Any]]:
        """Look up each registered patient's coverage; MRN-100002's policy has expired."""
        checked = []
        for patient in validated["data"]:
            coverage, copay = _PAYERS.get(patient["mrn"], ("unknown", 0))
            checked.append({"mrn": patient["mrn"], "coverage": coverage, "copay": copay})
        return checked

    coverage = ValidateDataOperator(
        task_id="validate_coverage",
        data=verify_insurance(registrations.output),
        suite=COVERAGE_SUITE,
        on_failure="quarantine",  # to a new file in [integrity] quarantine_dir per run, task and try
        max_unexpected_fraction=0.5,
        samples="hashed",  # patient data: XCom shows keyed fingerprints of failing values, not the values
        business_key="intake-{{ run_id }}",
    )

    @task
    def record_medical_history(validated: dict[str, Any]) -> list[str]:
        """Open a medical-history record for each patient who is registered and covered."""
        return [patient["mrn"] for patient in validated["data"]]

    record_medical_history(coverage.output)


patient_intake()
