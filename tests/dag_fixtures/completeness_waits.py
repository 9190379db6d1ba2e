"""A task that defers to the triggerer and a sensor in reschedule mode: the states a task passes through while it
waits (``deferred``, its resumption, ``up_for_reschedule``) each need their audit event."""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from pathlib import Path

import pendulum
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import BaseOperator, dag, get_current_context, task


class WaitForCutoff(BaseOperator):
    """Defers to the triggerer for 10 s, always (a time sensor would not defer once its moment passed; a shorter
    wait can end before the scheduler has handled the deferring process's end, and Airflow then renumbers the
    try)."""

    def execute(self, context):  # type: ignore[no-untyped-def]
        self.defer(trigger=TimeDeltaTrigger(dt.timedelta(seconds=10)), method_name="execute_complete")

    def execute_complete(self, context, event=None):  # type: ignore[no-untyped-def]
        return None


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False, tags=["test"])
def completeness_waits():
    WaitForCutoff(task_id="wait_for_cutoff")

    @task.sensor(poke_interval=2, timeout=120, mode="reschedule")
    def documents_arrived() -> bool:
        # Not yet at the first poke (which leaves a mark), there at the next: one reschedule on every run.
        run_id = get_current_context()["dag_run"].run_id
        mark = Path(tempfile.gettempdir()) / f"completeness_waits-{hashlib.sha256(run_id.encode()).hexdigest()}"
        if mark.exists():
            mark.unlink()
            return True
        mark.touch()
        return False

    documents_arrived()


completeness_waits()
