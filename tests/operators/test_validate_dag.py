"""ValidateDataOperator in a real DAG run (dag.test): quarantine hands the good rows on, warn succeeds, fail fails;
every validation is stored and audited with the task's identity."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.validation.quarantine import REASONS_COLUMN
from tests.dag_runs import load_fixture_dag
from tests.hooks.validation_helpers import events

pytestmark = pytest.mark.integration


def test_policies_in_a_dag_run(airflow_db, tmp_path, monkeypatch) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    store_url = f"sqlite:///{tmp_path / 'integrity.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
    # The DAG's quarantine_path renders empty from its own params: the [integrity] quarantine_dir is used.
    quarantine_dir = tmp_path / "quarantine"
    monkeypatch.setenv("AIRFLOW__INTEGRITY__QUARANTINE_DIR", str(quarantine_dir))
    run = load_fixture_dag("validate_operator").test()

    assert run.state == DagRunState.FAILED  # check_fail failed, as it must
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    states = {task_id: ti.state for task_id, ti in tis.items()}
    assert states == {
        "extract": TaskInstanceState.SUCCESS,
        "check_quarantine": TaskInstanceState.SUCCESS,
        "consume": TaskInstanceState.SUCCESS,
        "check_warn": TaskInstanceState.SUCCESS,
        "check_fail": TaskInstanceState.FAILED,
    }
    assert tis["check_fail"].try_number == 1  # AirflowFailException: not retried

    # Quarantine: the bad row with its reasons in a file named after the task; only good rows flow on.
    [written] = quarantine_dir.iterdir()
    safe_run_id = re.sub(r"[^A-Za-z0-9._-]+", "_", run.run_id)
    assert written.name.startswith(f"validate_operator__check_quarantine__{safe_run_id}__try1__")
    assert written.suffix == ".csv" and written.stat().st_mode & 0o077 == 0  # patient rows: owner only
    bad = pd.read_csv(written)
    assert bad["patient_id"].tolist() == ["p2"]
    assert bad[REASONS_COLUMN].tolist() == ["#1 expect_column_values_to_be_between on age"]
    assert tis["consume"].xcom_pull(task_ids="consume") == ["p1", "p3"]
    returned = tis["check_quarantine"].xcom_pull(task_ids="check_quarantine")
    assert returned["quarantine"]["bad_rows"] == 1 and returned["quarantine"]["path"] == str(written)

    # Every validation's full result is in the store, attributed to its task.
    hook = IntegrityCheckHook()
    warn_summary = tis["check_warn"].xcom_pull(task_ids="check_warn")["summary"]
    for summary, task_id in ((returned["summary"], "check_quarantine"), (warn_summary, "check_warn")):
        stored = hook.get_validation_result(summary["result_id"])
        assert stored is not None and stored.status == "failed"
        assert stored.identity["task_id"] == task_id and stored.identity["run_id"] == run.run_id

    failed = {e.task_id: e for e in events(store_url, "validation.failed")}
    assert set(failed) == {"check_quarantine", "check_warn", "check_fail"}
    assert failed["check_quarantine"].business_key == f"batch-{run.run_id}"
    assert {e.details["on_failure"] for e in failed.values()} == {"quarantine", "warn", "fail"}
    assert all(e.dag_id == "validate_operator" and e.run_id == run.run_id for e in failed.values())
    [quarantined] = events(store_url, "validation.quarantined")
    assert quarantined.details["result_id"] == returned["summary"]["result_id"]
    assert quarantined.task_id == "check_quarantine"


def test_a_quarantine_path_from_the_run_conf_is_refused(airflow_db, tmp_path, monkeypatch) -> None:
    from airflow.utils.state import TaskInstanceState

    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{tmp_path / 'integrity.db'}")
    monkeypatch.setenv("AIRFLOW__INTEGRITY__QUARANTINE_DIR", str(tmp_path / "quarantine"))
    elsewhere = tmp_path / "chosen-by-whoever-triggered"
    run = load_fixture_dag("validate_operator").test(run_conf={"quarantine_dir": str(elsewhere)})

    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert tis["check_quarantine"].state == TaskInstanceState.FAILED
    assert tis["check_quarantine"].try_number == 1  # AirflowFailException: retrying cannot help
    assert tis["consume"].state == TaskInstanceState.UPSTREAM_FAILED
    assert not elsewhere.exists() and not (tmp_path / "quarantine").exists()  # no patient row went anywhere
