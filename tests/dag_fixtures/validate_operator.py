"""ValidateDataOperator's policies on an upstream task's return value: quarantine (good rows flow on), warn,
and fail (tests/operators/test_validate_dag.py)."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_integrity.operators.validate import ValidateDataOperator

# p2's age is out of range (critical); p3's email has no "@" (warning only).
ROWS = [
    {"patient_id": "p1", "age": 34, "email": "ann@example.org"},
    {"patient_id": "p2", "age": 150, "email": "bob@example.org"},
    {"patient_id": "p3", "age": 51, "email": "no-mail"},
]
SUITE = {
    "name": "patients",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "patient_id"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "age", "min_value": 0, "max_value": 120},
        },
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "email", "regex": "@"},
            "severity": "warning",
        },
    ],
}


@dag(
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"quarantine_dir": ""},
    tags=["test"],
)
def validate_operator():
    @task
    def extract() -> list[dict]:
        return ROWS

    rows = extract()
    quarantined = ValidateDataOperator(
        task_id="check_quarantine",
        data=rows,
        suite=SUITE,
        on_failure="quarantine",
        quarantine_path="{{ params.quarantine_dir }}",
        max_unexpected_fraction=0.5,
        business_key="batch-{{ run_id }}",
    )

    @task
    def consume(validated: dict) -> list[str]:
        return [row["patient_id"] for row in validated["data"]]

    consume(quarantined.output)
    ValidateDataOperator(task_id="check_warn", data=rows, suite=SUITE, on_failure="warn")
    ValidateDataOperator(task_id="check_fail", data=rows, suite=SUITE)


validate_operator()
