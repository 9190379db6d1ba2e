"""``@task.idempotent`` and ``IdempotentPythonOperator`` in real DAG runs (``dag.test()``): the effect happens
once across duplicate runs and clears, later attempts return the stored result, other inputs are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dag_runs import load_fixture_dag
from tests.operators.support import idempotency_events

pytestmark = pytest.mark.integration


def _results(run) -> dict[str, tuple[str, int, object]]:  # type: ignore[no-untyped-def]
    return {
        ti.task_id: (ti.state, ti.try_number, ti.xcom_pull(task_ids=ti.task_id)) for ti in run.get_task_instances()
    }


def _clear(dag_id: str, run_id: str) -> None:
    """Clear every task instance of a finished run, as "Clear" in the UI does."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import clear_task_instances
    from airflow.utils.state import DagRunState

    with settings.Session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
        clear_task_instances(run.get_task_instances(session=session), session, dag_run_state=DagRunState.RUNNING)
        session.commit()


def test_effect_happens_once_across_runs_and_clears_and_other_inputs_fail(
    airflow_db, store_conn_env: str, tmp_path: Path
) -> None:
    from airflow.utils.state import DagRunState

    effects = tmp_path / "effects.txt"
    conf = {"claim_id": "314", "amount": "10.00", "effects": str(effects)}
    dag = load_fixture_dag("idempotent_payments")

    first = dag.test(run_conf=conf)
    assert first.state == DagRunState.SUCCESS
    first_results = _results(first)
    assert first_results["pay"] == ("success", 1, {"paid": "314", "amount": "10.00", "token": 1, "by": "deco"})
    assert first_results["pay_classic"][2] == {"paid": "314", "amount": "10.00", "token": 1, "by": "classic"}
    # The sensors (deferred and poking) returned the stored results.
    assert first_results["wait_deco"][2] == first_results["pay"][2]
    assert first_results["wait_classic"][2] == first_results["pay_classic"][2]

    # A duplicate trigger (a new run id), then the first run cleared and run again (same run id).
    second = dag.test(run_conf=conf)
    _clear(dag.dag_id, first.run_id)
    rerun = dag.test(run_conf=conf, logical_date=first.logical_date, run_after=first.run_after)
    assert second.run_id != first.run_id
    assert rerun.run_id == first.run_id
    for run in (second, rerun):
        assert run.state == DagRunState.SUCCESS
        results = _results(run)
        assert {task: value for task, (_, _, value) in results.items()} == {
            task: value for task, (_, _, value) in first_results.items()
        }
    assert sorted(effects.read_text().splitlines()) == ["classic classic-314 1", "deco deco-314 1"]

    events = idempotency_events(store_conn_env, "deco-314")
    assert [(e["event"], e["run_id"]) for e in events] == [
        ("claimed", first.run_id),
        ("completed", first.run_id),
        ("replayed", second.run_id),
        ("replayed", first.run_id),
    ]
    assert all(e["task_id"] == "pay" for e in events)
    assert events[2]["details"]["completed_by"]["run_id"] == first.run_id
    assert "result" not in events[2]["details"]  # a fingerprint of the result, never the result
    assert events[2]["details"]["result_sha256"] == events[1]["details"]["result_sha256"]

    # The same claim with another amount: refused at once, although the tasks have retries left.
    changed = dag.test(run_conf={**conf, "amount": "99.00"})
    assert changed.state == DagRunState.FAILED
    assert {task: (state, tries) for task, (state, tries, _) in _results(changed).items()} == {
        "pay": ("failed", 1),
        "pay_classic": ("failed", 1),
        "wait_deco": ("upstream_failed", 0),
        "wait_classic": ("upstream_failed", 0),
    }
    assert len(effects.read_text().splitlines()) == 2
    mismatch = idempotency_events(store_conn_env, "classic-314")[-1]
    assert mismatch["event"] == "fingerprint_mismatch"
    assert mismatch["run_id"] == changed.run_id
    details = mismatch["details"]
    assert details["fingerprint"] != details["stored_fingerprint"]
    assert details["origin"]["run_id"] == first.run_id
    assert details["origin"]["task_id"] == "pay_classic"
