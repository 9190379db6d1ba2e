"""The smallest test DAG: proves the test bundle is configured (tests/test_dag_fixtures_bundle.py)."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False, tags=["test"])
def fixture_smoke():
    @task
    def produce() -> int:
        return 41

    @task
    def consume(value: int) -> int:
        return value + 1

    consume(produce())


fixture_smoke()
