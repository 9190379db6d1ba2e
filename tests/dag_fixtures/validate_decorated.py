"""@task.validated: inputs and return values validated before they flow on (tests/decorators/test_validated.py)."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

ROWS = [
    {"patient_id": "p1", "age": 34},
    {"patient_id": "p2", "age": 150},
    {"patient_id": "p3", "age": 51},
]
AGES = [
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 0, "max_value": 120}}
]
IDS = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "patient_id"}}]


@dag(
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
)
def validate_decorated():
    @task.validated(
        suite=AGES,
        on_failure="quarantine",
        max_unexpected_fraction=0.5,
    )
    def register() -> list[dict]:
        return ROWS

    @task.validated(suite=IDS, input_suites={"rows": AGES})
    def enrich(rows: list[dict]) -> list[dict]:
        return [{**row, "checked": True} for row in rows]

    @task.validated(suite=AGES, on_failure="warn")
    def tolerant() -> list[dict]:
        return ROWS

    @task.validated(suite=AGES)
    def strict() -> list[dict]:
        return ROWS

    @task.validated(suite=IDS, input_suites={"rows": AGES})
    def guarded(rows: list[dict]) -> list[dict]:
        return rows

    enrich(register())
    guarded(tolerant())
    strict()


validate_decorated()
