"""@task.validated in a real DAG run: return values (and named inputs) are validated before they flow on."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_integrity.validation.quarantine import REASONS_COLUMN
from tests.dag_runs import load_fixture_dag
from tests.hooks.validation_helpers import events

pytestmark = pytest.mark.integration


def test_validated_task_policies_in_a_dag_run(airflow_db, tmp_path, monkeypatch) -> None:
    from airflow.sdk import task
    from airflow.utils.state import DagRunState, TaskInstanceState

    from airflow_integrity.decorators.validated import validated_task

    assert task.validated is validated_task  # registered through the provider's "task-decorators"

    store_url = f"sqlite:///{tmp_path / 'integrity.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
    monkeypatch.setenv("AIRFLOW__INTEGRITY__QUARANTINE_DIR", str(tmp_path / "q"))
    run = load_fixture_dag("validate_decorated").test()

    assert run.state == DagRunState.FAILED
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert {t: ti.state for t, ti in tis.items()} == {
        "register": TaskInstanceState.SUCCESS,  # quarantined the bad row
        "enrich": TaskInstanceState.SUCCESS,  # its input (the good rows) passed
        "tolerant": TaskInstanceState.SUCCESS,  # warn
        "guarded": TaskInstanceState.FAILED,  # its input failed: the function never ran
        "strict": TaskInstanceState.FAILED,  # fail
    }
    assert [r["patient_id"] for r in tis["register"].xcom_pull(task_ids="register")] == ["p1", "p3"]
    assert [r["checked"] for r in tis["enrich"].xcom_pull(task_ids="enrich")] == [True, True]
    assert len(tis["tolerant"].xcom_pull(task_ids="tolerant")) == 3  # warn hands on what the function returned
    [written] = (tmp_path / "q").iterdir()
    assert pd.read_csv(written)[["patient_id", REASONS_COLUMN]].values.tolist() == [
        ["p2", "#0 expect_column_values_to_be_between on age"]
    ]

    by_task: dict[str, list[str]] = {}
    for event in events(store_url):
        if event.event_type.startswith("validation."):
            by_task.setdefault(str(event.task_id), []).append(event.event_type)
    assert by_task == {
        "register": ["validation.failed", "validation.quarantined"],
        "enrich": ["validation.passed", "validation.passed"],  # input, then return value
        "tolerant": ["validation.failed"],
        "guarded": ["validation.failed"],  # the input; no return value to validate
        "strict": ["validation.failed"],
    }


def test_a_validated_task_hands_on_the_original_records(tmp_path, monkeypatch) -> None:
    from airflow.sdk import DAG

    from airflow_integrity.decorators.validated import validated_task
    from tests.hooks.test_validation_handoff import AGE, BIG, EXACT

    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{tmp_path / 'integrity.db'}")
    with DAG("validated_exact", schedule=None):

        @validated_task(
            suite=AGE, on_failure="quarantine", quarantine_path=str(tmp_path / "q"), max_unexpected_fraction=0.5
        )
        def register() -> list[dict]:
            return EXACT

        operator = register().operator
    handed_on = operator.execute({})
    assert handed_on == [EXACT[0], EXACT[2]]
    assert handed_on[0] is EXACT[0] and handed_on[1]["id"] == BIG + 2
