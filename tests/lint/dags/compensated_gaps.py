"""A DAG that compensates, with one keyed effect that declares no undo."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_integrity.operators.compensation import NOTHING_TO_UNDO, compensation
from airflow_integrity.operators.idempotent import IdempotentPythonOperator

with DAG(dag_id="compensated_gaps", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    IdempotentPythonOperator(
        task_id="reserve", python_callable=lambda: 1, key="r-{{ run_id }}", compensate=lambda result: None
    )
    IdempotentPythonOperator(
        task_id="notify", python_callable=lambda: 1, key="n-{{ run_id }}", compensate=NOTHING_TO_UNDO
    )
    IdempotentPythonOperator(task_id="ship", python_callable=lambda: 1, key="s-{{ run_id }}")
    compensation()
