"""Compensation at its edges: a failed setup task, an effect that declares no undo, a mapped effect, an effect
another run relies on, and a failed error-budget check (not a failure of the process)."""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest

from airflow_integrity.hooks.compensation import effects_of_run, runs_relying_on
from tests.dag_runs import load_fixture_dag
from tests.operators import compensation_workers as workers

pytestmark = pytest.mark.integration


def _states(run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_a_failed_setup_task_does_not_keep_the_compensation_from_running(
    airflow_db, store_conn_env: str, tmp_path: Path
) -> None:
    log = tmp_path / "effects.log"
    run = load_fixture_dag("compensation_after_setup").test(run_conf={"case": "s1", "log": str(log)})
    states = _states(run)
    assert (states["prepare"], states["do_pay"], states["compensate"]) == ("failed", "success", "success")
    assert log.read_text().splitlines() == ["did pay", "undid pay"]


def test_an_effect_without_an_undo_is_reported_and_fails_the_compensation_for_a_person(
    airflow_db, store_conn_env: str, tmp_path: Path
) -> None:
    log = tmp_path / "effects.log"
    run = load_fixture_dag("compensation_undeclared").test(run_conf={"case": "u1", "log": str(log)})
    assert _states(run)["compensate"] == "failed"
    assert log.read_text().splitlines() == ["did reserve", "did notify", "undid reserve"]


def test_compensate_on_a_mapped_task_is_refused_when_the_dag_is_parsed() -> None:
    from airflow.sdk import DAG

    from airflow_integrity.operators.compensation import compensation
    from airflow_integrity.operators.idempotent import IdempotentPythonOperator

    with DAG("mapped_undo", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
        IdempotentPythonOperator.partial(
            task_id="pay", python_callable=print, key="k", compensate=lambda result: None
        ).expand(op_args=[[1], [2]])
        with pytest.raises(ValueError, match="'pay' is mapped: compensate= is not supported on mapped tasks"):
            compensation()


def test_an_effect_another_run_replayed_is_not_undone_by_the_run_that_made_it(store, store_conn_env: str) -> None:
    workers.make_effect("shared-1", "post_invoice")
    (effect,) = effects_of_run(workers.DAG_ID, workers.RUN_ID)
    assert runs_relying_on(effect) == []
    from airflow_integrity.hooks.idempotency import IdempotencyGuard
    from airflow_integrity.store.ledger.codec import inputs_digest

    IdempotencyGuard(
        key="shared-1",
        fingerprint=inputs_digest({"key": "shared-1"}),
        namespace=workers.NAMESPACE,
        holder={"dag_id": workers.DAG_ID, "run_id": "manual__2", "task_id": "post_invoice"},
    ).run(lambda claim: pytest.fail("a replay must not run the work"))
    assert runs_relying_on(effect) == [f"{workers.DAG_ID} / manual__2"]
