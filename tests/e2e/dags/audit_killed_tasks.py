"""Two tasks whose process the end-to-end test kills with SIGKILL mid-run.

``killed_then_retried`` has a retry: its first try is killed, the scheduler fails it (the
executor reports the workload over while the task is still running)
and the second try succeeds. ``killed_for_good`` has none: its supervisor reports the failure. Each try
writes its process id to ``$INTEGRITY_E2E_DIR/<task>.<try>.pid`` and waits to be killed.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import dag, get_current_context, task


def _announce_and_wait(name: str) -> None:
    try_number = get_current_context()["ti"].try_number
    folder = Path(os.environ["INTEGRITY_E2E_DIR"])
    (folder / f"{name}.{try_number}.pid").write_text(str(os.getpid()))
    time.sleep(600)


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False, tags=["test"])
def audit_killed_tasks() -> None:
    @task(retries=1, retry_delay=timedelta(seconds=1))
    def killed_then_retried() -> str:
        if get_current_context()["ti"].try_number == 1:
            _announce_and_wait("killed_then_retried")
        return "second try"

    @task(retries=0)
    def killed_for_good() -> None:
        _announce_and_wait("killed_for_good")

    killed_then_retried()
    killed_for_good()


audit_killed_tasks()
