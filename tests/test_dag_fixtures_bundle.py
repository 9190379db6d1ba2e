"""The test DAGs of tests/dag_fixtures run with dag.test() (a bundle of their own, see conftest)."""

from __future__ import annotations

import pytest

from tests.dag_runs import load_fixture_dag

pytestmark = pytest.mark.integration


def test_a_fixture_dag_runs_with_dag_test(airflow_db) -> None:
    run = load_fixture_dag("fixture_smoke").test()
    assert run.state == "success"
    consume = next(ti for ti in run.get_task_instances() if ti.task_id == "consume")
    assert consume.xcom_pull(task_ids="consume") == 42
