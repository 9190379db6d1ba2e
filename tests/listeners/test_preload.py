"""Where the LocalExecutor forks task processes from the scheduler, the scheduler loads GX once; nowhere else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_integrity.listeners.preload import TASK_MODULES, VALIDATION_MODULES, forks_task_processes


class _NotAJob:
    """Stands for the task runner's marker: any component that is not an Airflow ``Job``."""


def _job() -> object:
    from airflow.jobs.job import Job

    return Job()


SCHEDULER = ["/opt/airflow/bin/airflow", "scheduler", "--skip-serve-logs"]


@pytest.mark.parametrize(
    ("argv", "executors", "start_method", "expected"),
    [
        (SCHEDULER, "LocalExecutor", None, True),
        (SCHEDULER, "LocalExecutor", "fork", True),
        (["/usr/lib/python3.11/airflow/__main__.py", "scheduler"], "LocalExecutor", None, True),
        (SCHEDULER, "airflow.executors.local_executor.LocalExecutor", None, True),
        (SCHEDULER, "CeleryExecutor, team_a:LocalExecutor", None, True),
        (SCHEDULER, "CeleryExecutor", None, False),
        (SCHEDULER, "KubernetesExecutor,CeleryExecutor", None, False),
        (SCHEDULER, "LocalExecutor", "spawn", False),
        (SCHEDULER, "LocalExecutor", "forkserver", False),
        (["/opt/airflow/bin/airflow", "triggerer"], "LocalExecutor", None, False),
        (["/opt/airflow/bin/airflow", "dag-processor"], "LocalExecutor", None, False),
        (["/opt/airflow/bin/airflow"], "LocalExecutor", None, False),
    ],
)
def test_only_a_local_executor_scheduler_that_forks_preloads(
    argv: list[str], executors: str, start_method: str | None, expected: bool
) -> None:
    assert forks_task_processes(_job(), argv, executors, start_method) is expected


def test_a_component_that_is_not_a_job_never_preloads() -> None:
    assert forks_task_processes(_NotAJob(), SCHEDULER, "LocalExecutor", "fork") is False


_STARTING = """
import json, sys
sys.argv = ["airflow", "scheduler"]
from airflow.jobs.job import Job
from airflow_integrity.listeners.preload import on_starting
on_starting(Job())
print(json.dumps({name: name in sys.modules for name in %r}))
"""


@pytest.mark.parametrize(("setting", "loaded"), [("True", True), ("False", False)])
def test_on_starting_loads_the_task_modules_and_gx_unless_turned_off(
    setting: str, loaded: bool, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__INTEGRITY__")}
    env.update(
        AIRFLOW_HOME=str(tmp_path),
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__INTEGRITY__PRELOAD_VALIDATION=setting,
    )
    child = subprocess.run(
        [sys.executable, "-c", _STARTING % ([*TASK_MODULES, *VALIDATION_MODULES],)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert child.returncode == 0, child.stderr
    modules = json.loads(child.stdout.strip().splitlines()[-1])
    # The package's own task modules always (they are light), GX and the validation modules unless turned off.
    assert modules == {**dict.fromkeys(TASK_MODULES, True), **dict.fromkeys(VALIDATION_MODULES, loaded)}
