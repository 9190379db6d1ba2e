"""A task that defers to the triggerer and a sensor in reschedule mode: the states a task passes through while it
waits (``deferred``, its resumption, ``up_for_reschedule``) each need their audit event."""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from pathlib import Path

import pendulum
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import dag, get_current_context, task


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False, tags=["test"])
def completeness_waits():
    TimeDeltaSensor(task_id="wait_for_cutoff", delta=dt.timedelta(seconds=15), deferrable=True)

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
