"""Two DAGs in one file with a task id in common, mapped tasks, and forms of xcom_pull and SQL that are easy
to misread."""

from __future__ import annotations

import pendulum
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG, task

START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("first", schedule=None, start_date=START):
    # integrity-lint: ignore[unguarded-effect]: the partner deduplicates by the run id it is sent
    HttpOperator(task_id="send", http_conn_id="partner", endpoint="/a", method="POST")

with DAG("second", schedule=None, start_date=START):
    HttpOperator(task_id="send", http_conn_id="partner", endpoint="/b", method="POST")

    @task
    def make() -> list[int]:
        return [1, 2]

    @task
    def use(value: int) -> None:
        pass

    use.expand(value=make())
    HttpOperator.partial(task_id="post_each", http_conn_id="partner", method="POST").expand(endpoint=["/x", "/y"])
    HttpOperator(
        task_id="forward",
        http_conn_id="partner",
        endpoint="/f",
        method="GET",
        data="{{ ti.xcom_pull(key='return_value', task_ids=('make',)) }}",
    )
    SQLExecuteQueryOperator(
        task_id="purge_via_cte",
        conn_id="w",
        sql="WITH gone AS (DELETE FROM t RETURNING *) SELECT count(*) FROM gone",
    )
    SQLExecuteQueryOperator(task_id="explain_analyze", conn_id="w", sql="EXPLAIN ANALYZE DELETE FROM t")
    for name in ("loop_a", "loop_b"):
        HttpOperator(task_id=f"{name}_post", http_conn_id="partner", endpoint="/l", method="POST")
