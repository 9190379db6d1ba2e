"""A task that reports which modules its process had loaded before it ran, and a validation after it.

The end-to-end test runs it under the LocalExecutor: with ``[integrity] preload_validation`` on, the scheduler
loaded Great Expectations before its workers forked, so the task process already has it.
"""

from __future__ import annotations

import sys

import pendulum
from airflow.sdk import dag, task

from airflow_integrity.operators.validate import ValidateDataOperator

PRELOADED = (
    "great_expectations",
    "pandas",
    "airflow_integrity.hooks.integrity",
    "airflow_integrity.hooks.idempotency",
)


@dag(
    dag_id="preloaded_validation",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
)
def preloaded_validation() -> None:
    @task
    def loaded_before_the_task() -> dict[str, bool]:
        return {name: name in sys.modules for name in PRELOADED}

    ValidateDataOperator(
        task_id="validate_claims",
        data=[{"claim_id": "c-1", "amount": 120.0}, {"claim_id": "c-2", "amount": 80.5}],
        suite=[{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "claim_id"}}],
    ).set_upstream(loaded_before_the_task())


preloaded_validation()
