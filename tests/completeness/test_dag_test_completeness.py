"""Under ``dag.test()``: every final state Airflow's metadata database holds has its audit event, with its cause —
for tasks skipped by a branch, a short-circuit or a trigger rule, ``upstream_failed`` descendants of a failure,
a mapped task with a skipped element, and Airflow's own example DAGs; ``audit reconcile`` finds no gap, and
finds every gap when the listeners are switched off."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import pytest

from airflow_integrity.cli import audit_command
from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.verify import verify
from tests.conftest import AIRFLOW_EXAMPLES
from tests.dag_runs import load_airflow_example, load_fixture_dag

pytestmark = pytest.mark.integration


def _events(url: str, dag_id: str, run_id: str) -> list[Any]:
    store = IntegrityStore(StoreLocation.from_url(url))
    AuditLog(store).chain_pending()
    return [r for _, r in iter_records(store, dag_id=dag_id, run_id=run_id) if not isinstance(r, str)]


def _final_states_without_events(run: Any, events: list[Any]) -> list[tuple[str, int, int, str]]:
    have = Counter((e.event_type, e.task_id, e.map_index, e.try_number) for e in events)
    missing = []
    for ti in run.get_task_instances():
        state = str(getattr(ti.state, "value", ti.state))
        if have[(f"task_instance.{state}", ti.task_id, ti.map_index, ti.try_number)] < 1:
            missing.append((ti.task_id, ti.map_index, ti.try_number, state))
    run_state = str(getattr(run.state, "value", run.state))
    if have[(f"dag_run.{run_state}", None, None, None)] < 1:
        missing.append(("<run>", -1, 0, run_state))
    return missing


def _reconcile(run: Any, capsys: pytest.CaptureFixture[str], **options: Any) -> tuple[int, str]:
    """``airflow integrity audit reconcile --dag-id <the run's DAG> --since <its start>``: the runs of earlier
    tests share Airflow's metadata database but not this test's store."""
    since = (run.queued_at or run.start_date).isoformat()
    values: dict[str, Any] = {
        "conn_id": None,
        "dag_id": run.dag_id,
        "since": since,
        "record_gaps": False,
        "grace": 0.0,
    }
    args = argparse.Namespace(**{**values, **options})
    try:
        audit_command.reconcile(args)
        code = 0
    except SystemExit as exited:
        code = int(exited.code or 0)
    return code, capsys.readouterr().out


@pytest.mark.requirement("alcoa.complete")
def test_every_state_of_skips_failures_and_mapped_tasks_has_its_event_and_cause(
    airflow_db, store_conn_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = load_fixture_dag("completeness_paths").test()
    events = _events(store_conn_env, run.dag_id, run.run_id)
    assert _final_states_without_events(run, events) == []
    causes = {
        (e.event_type, e.task_id): e.details.get("cause")
        for e in events
        if e.event_type in ("task_instance.skipped", "task_instance.upstream_failed")
    }
    assert causes[("task_instance.skipped", "reject")] == {
        "kind": "branch",
        "task_id": "choose",
        "followed": ["approve"],
    }
    assert causes[("task_instance.skipped", "archive_documents")] == {
        "kind": "skipped_by_upstream",
        "task_id": "has_documents",
        "skipped": ["archive_documents"],
    }
    assert causes[("task_instance.upstream_failed", "receipt")] == {
        "kind": "trigger_rule",
        "trigger_rule": "all_success",
        "upstream": {"charge": "failed"},
    }
    assert causes[("task_instance.upstream_failed", "close")]["upstream"] == {"receipt": "upstream_failed"}
    # The mapped element that skipped itself: its own event, from its worker, at its own map index.
    skipped = [e for e in events if e.event_type == "task_instance.skipped" and e.task_id == "check"]
    assert [(e.map_index, e.try_number) for e in skipped] == [(1, 1)]
    # The states no listener saw are recorded before the run's end, and the trail verifies.
    kinds = [e.event_type for e in events]
    assert kinds[-1] == "dag_run.failed" and kinds.index("task_instance.upstream_failed") < len(kinds) - 1
    assert verify(IntegrityStore(StoreLocation.from_url(store_conn_env))).ok
    code, out = _reconcile(run, capsys)
    assert code == 0 and "0 state(s) without their event" in out


@pytest.mark.parametrize("dag_id", AIRFLOW_EXAMPLES)
def test_every_final_state_of_airflows_own_examples_has_its_event(
    airflow_db, store_conn_env: str, capsys: pytest.CaptureFixture[str], dag_id: str
) -> None:
    run = load_airflow_example(dag_id).test()
    events = _events(store_conn_env, run.dag_id, run.run_id)
    assert _final_states_without_events(run, events) == []
    for event in events:
        if event.event_type in ("task_instance.skipped", "task_instance.upstream_failed") and (
            event.details.get("recorded_by")
        ):
            assert event.details["cause"]["kind"] in ("branch", "skipped_by_upstream", "trigger_rule"), event
    code, out = _reconcile(run, capsys)
    assert code == 0, out


def test_with_the_listeners_off_reconcile_lists_every_gap_and_marks_each_once(
    airflow_db, store, store_conn_env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__INTEGRITY__AUDIT_LISTENERS", "False")
    run = load_airflow_example("example_branch_operator").test()
    assert _events(store_conn_env, run.dag_id, run.run_id) == []
    code, out = _reconcile(run, capsys)
    tis = run.get_task_instances()
    assert code == 1
    for ti in tis:
        state = str(getattr(ti.state, "value", ti.state))
        assert f"task_instance.{state} missing: example_branch_operator / {run.run_id} / {ti.task_id}" in out, ti
    gaps = int(out.rsplit(": ", 1)[1].split(" ")[0])
    assert gaps >= len(tis) + 1  # every task's final state (and its start where it ran) and the run's

    code, out = _reconcile(run, capsys, record_gaps=True)
    assert code == 1 and f"Recorded {gaps} reconciliation.gap event(s)." in out
    markers = _events(store_conn_env, run.dag_id, run.run_id)
    assert len(markers) == gaps and {m.event_type for m in markers} == {"reconciliation.gap"}
    assert all(m.details["recorded_by"] == "airflow integrity audit reconcile" for m in markers)
    code, out = _reconcile(run, capsys, record_gaps=True)
    assert code == 1 and "[marked in the trail]" in out and "Recorded" not in out
    assert len(_events(store_conn_env, run.dag_id, run.run_id)) == gaps


def test_a_deferral_its_resumption_and_a_reschedule_have_their_events(
    airflow_db, store_conn_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = load_fixture_dag("completeness_waits").test()
    events = _events(store_conn_env, run.dag_id, run.run_id)
    assert _final_states_without_events(run, events) == []
    deferred = [e.event_type for e in events if e.task_id == "wait_for_cutoff"]
    assert deferred.index("task_instance.deferred") < deferred.index("task_instance.resumed"), deferred
    rescheduled = [e.event_type for e in events if e.task_id == "documents_arrived"]
    assert "task_instance.up_for_reschedule" in rescheduled, rescheduled
    code, out = _reconcile(run, capsys)
    assert code == 0, out
