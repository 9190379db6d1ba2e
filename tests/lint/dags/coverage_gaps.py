"""A DAG with one example of each integrity-coverage gap the lint reports, and their guarded twins."""

from __future__ import annotations

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task

from airflow_integrity.operators.http import IdempotentHttpOperator
from airflow_integrity.operators.validate import ValidateDataOperator

SUITE = {"name": "rows", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "id"}}]}


@dag(dag_id="coverage_gaps", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def coverage_gaps() -> None:
    @task
    def extract() -> list[dict]:
        return [{"id": 1}]

    @task
    def transform(rows: list[dict]) -> list[dict]:  # takes extract's data unvalidated: reported
        return rows

    rows = transform(extract())
    checked = ValidateDataOperator(task_id="check_rows", data=rows, suite=SUITE)

    @task
    def load(validated: dict) -> None:  # takes validated data: guarded
        pass

    load(checked.output)

    HttpOperator(task_id="notify_partner", http_conn_id="partner", endpoint="/events", method="POST")
    HttpOperator(task_id="read_partner", http_conn_id="partner", endpoint="/events", method="GET")
    IdempotentHttpOperator(
        task_id="pay_partner", http_conn_id="partner", endpoint="/pay", method="POST", key="pay-{{ run_id }}"
    )
    SQLExecuteQueryOperator(task_id="count_rows", conn_id="warehouse", sql="-- how many\nSELECT count(*) FROM t")
    SQLExecuteQueryOperator(task_id="insert_rows", conn_id="warehouse", sql="INSERT INTO t VALUES (1)")
    TriggerDagRunOperator(task_id="start_downstream", trigger_dag_id="downstream")
    HITLOperator(task_id="ask_anything", subject="Which?", options=["a", "b"])
    reviewed = HITLOperator(task_id="ask_for_review", subject="Reviewed?", options=["yes", "no"])
    reviewed.signature_meaning = "review"
    ApprovalOperator(task_id="approve", subject="Approve?")

    @task
    def consume_approval(answer: dict) -> None:  # the approval's answer, unvalidated: reported
        pass

    # integrity-lint: ignore[unvalidated-handoff]: the answer is a person's signed choice,
    # already recorded in the trail
    @task
    def act_on_review(answer: dict) -> None:
        pass

    # integrity-lint: ignore[unguarded-effect]
    HttpOperator(task_id="ping_partner", http_conn_id="partner", endpoint="/ping", method="PUT")

    consume_approval(reviewed.output)
    act_on_review(reviewed.output)


coverage_gaps()
