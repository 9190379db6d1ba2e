"""A validated hand-off with error budgets: ``validate_rows`` quarantines the rows whose ``amount`` is negative
(``params.bad`` of 4), and ``check_error_budgets`` allows at most 30 % of the rows quarantined (fail) and no
failed validation (warn); a breach is not a failed step of the process, so the compensation skips.
tests/operators/test_error_budget.py runs it."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_integrity.operators.compensation import compensation
from airflow_integrity.operators.error_budget import ErrorBudget, ErrorBudgetOperator
from airflow_integrity.operators.validate import ValidateDataOperator

SUITE = {
    "name": "non_negative_amounts",
    "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0}}
    ],
}


@dag(
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"bad": 1},
    default_args={"retries": 0},
    tags=["test"],
)
def budgeted_rows():
    @task
    def rows(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        assert params is not None
        return [{"id": n, "amount": -1 if n < params["bad"] else 10} for n in range(4)]

    validated = ValidateDataOperator(
        task_id="validate_rows",
        data=rows(),
        suite=SUITE,
        on_failure="quarantine",
        max_unexpected_fraction=0.9,
    )
    validated >> ErrorBudgetOperator(
        task_id="check_error_budgets",
        budgets=[
            ErrorBudget("quarantined_rows", max_rate=0.30, task_id="validate_rows"),
            ErrorBudget("failed_validations", max_rate=0.0, task_id="validate_rows", on_breach="warn"),
        ],
    )
    compensation()


budgeted_rows()
