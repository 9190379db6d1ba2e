"""A deferrable idempotent task finds its key held by a live holder (another process): it defers to the trigger
instead of running the work, and when the holder has completed the key it resumes and returns the stored result."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tests.dag_runs import load_fixture_dag
from tests.operators.live_holder import hold_until_conflict
from tests.operators.support import idempotency_events

pytestmark = pytest.mark.integration


def test_deferred_task_waits_for_the_live_holder_and_replays_its_result(
    airflow_db, store, store_conn_env: str, tmp_path: Path
) -> None:
    from airflow.utils.state import DagRunState

    effects = tmp_path / "effects.txt"
    ctx = multiprocessing.get_context("spawn")
    claimed = ctx.Event()
    holder = ctx.Process(
        target=hold_until_conflict,
        args=(store_conn_env, "tests", "settle-1", {"claim": 1}, {"token": 1, "by": "holder"}, claimed),
    )
    holder.start()
    try:
        assert claimed.wait(60)
        run = load_fixture_dag("idempotent_deferral").test(run_conf={"effects": str(effects)})
    finally:
        holder.join(60)
        if holder.is_alive():
            holder.kill()
    assert holder.exitcode == 0
    assert run.state == DagRunState.SUCCESS
    (ti,) = run.get_task_instances()
    assert ti.xcom_pull(task_ids="settle") == {"token": 1, "by": "holder"}
    assert not effects.exists()  # the task never ran the work itself
    events = idempotency_events(store_conn_env, "settle-1")
    assert [e["event"] for e in events] == ["conflict", "replayed"]
    assert events[0]["details"]["holder"]["role"] == "live holder"
    assert all(e["run_id"] == run.run_id for e in events)
