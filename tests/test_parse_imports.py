"""A DAG file that imports every operator, sensor and decorator loads only what building its tasks needs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

IMPORTS = """
from airflow_integrity.decorators.idempotent import idempotent_task
from airflow_integrity.decorators.validated import validated_task
from airflow_integrity.operators.compensation import CompensateOperator, compensation
from airflow_integrity.operators.error_budget import ErrorBudget, ErrorBudgetOperator
from airflow_integrity.operators.http import HttpCompensation, IdempotentHttpOperator
from airflow_integrity.operators.idempotent import IdempotentPythonOperator, current_claim
from airflow_integrity.operators.validate import ValidateDataOperator
from airflow_integrity.sensors.idempotency import IdempotencyKeySensor
from airflow_integrity.sensors.validated_data import ValidatedDataSensor
"""
# What executing a task needs, and nothing a parse does: the store, the guard, GX and the data libraries.
RUN_TIME_ONLY = (
    "airflow_integrity.hooks.integrity",
    "airflow_integrity.hooks.idempotency",
    "airflow_integrity.hooks.compensation",
    "airflow_integrity.hooks.validation",
    "airflow_integrity.hooks.data_sources",
    "airflow_integrity.store.store",
    "airflow_integrity.store.ledger.ledger",
    "airflow_integrity.store.audit.event",
    "airflow_integrity.validation.run",
    "airflow_integrity.validation.suites",
    "great_expectations",
    "pandas",
    "numpy",
)


def test_importing_every_operator_loads_no_run_time_module() -> None:
    probe = (
        f"{IMPORTS}\nimport json, sys\nprint(json.dumps(sorted(m for m in {RUN_TIME_ONLY!r} if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_loading_the_plugin_pre_imports_the_operator_modules_and_nothing_run_time() -> None:
    # The DAG processor loads plugins before it forks for each parse: what the plugin imports, parses inherit.
    probe = (
        "import json, sys\nimport airflow_integrity.plugin as plugin\n"
        "print(json.dumps([[m for m in plugin.DAG_AUTHORING_MODULES if m not in sys.modules],"
        f" sorted(m for m in {RUN_TIME_ONLY!r} if m in sys.modules)]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    missing, run_time = json.loads(done.stdout.strip().splitlines()[-1])
    assert missing == [] and run_time == []
    # The plugin pre-imports exactly the modules a DAG file imports from the package.
    from airflow_integrity.plugin import DAG_AUTHORING_MODULES

    named = {line.split()[1] for line in IMPORTS.strip().splitlines()}
    assert named == set(DAG_AUTHORING_MODULES)
