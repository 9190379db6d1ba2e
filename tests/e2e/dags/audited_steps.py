"""Six audited steps that run side by side for a few seconds each: a scale-out test stops the integrity store's
database while they run, under the ``fail`` and the ``spool`` policy (``[integrity] audit_on_store_error``)."""

from __future__ import annotations

import time
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

STEPS = 6


@dag(
    dag_id="audited_steps",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"seconds": Param(6, type="integer", description="How long each step works.")},
    default_args={"retries": 4, "retry_delay": timedelta(seconds=3)},
    tags=["test"],
)
def audited_steps() -> None:
    for n in range(1, STEPS + 1):

        @task(task_id=f"step_{n}")
        def step(params: dict | None = None) -> None:
            time.sleep(int((params or {})["seconds"]))

        step()


audited_steps()
