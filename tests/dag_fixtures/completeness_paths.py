"""Every way Airflow sets a task state without running the task, in one DAG: a branch, a short-circuit, trigger
rules, a failure with ``upstream_failed`` descendants, and a mapped task with a skipped element.
tests/completeness checks that each final state has its audit event, with its cause."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_integrity.compat import AirflowSkipException


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False, tags=["test"])
def completeness_paths():
    @task.branch
    def choose() -> str:
        return "approve"

    @task
    def approve() -> str:
        return "approved"

    @task
    def reject() -> str:
        return "rejected"

    @task(trigger_rule="none_failed_min_one_success")
    def notify() -> str:
        return "notified"

    @task.short_circuit
    def has_documents() -> bool:
        return False

    @task
    def archive_documents() -> None:
        return None

    @task(retries=0)
    def charge() -> None:
        raise ValueError("the payment provider refused the card")

    @task
    def receipt() -> None:
        return None

    @task
    def close() -> None:
        return None

    @task
    def check(item: int) -> int:
        if item == 2:
            raise AirflowSkipException("item 2 needs no check")
        return item

    choice = choose()
    choice >> [approve(), reject()] >> notify()
    has_documents() >> archive_documents()
    charge() >> receipt() >> close()
    check.expand(item=[1, 2, 3])


completeness_paths()
