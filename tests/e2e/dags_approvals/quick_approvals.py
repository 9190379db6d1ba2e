"""Six approvals that wait side by side, answered the moment each asks (tests/e2e/test_quick_approvals_e2e.py,
bench/quick_approvals.py)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG

APPROVALS = 6

with DAG(
    dag_id="quick_approvals",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
):
    for number in range(1, APPROVALS + 1):
        ApprovalOperator(
            task_id=f"approve_{number}",
            subject=f"Approve item {number} of run {{{{ run_id }}}}?",
            response_timeout=timedelta(minutes=10),
        )
