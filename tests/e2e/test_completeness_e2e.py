"""Audit completeness on a real cluster: every state Airflow's metadata database holds has its event.

One cluster runs Airflow's own example DAGs, a DAG of every way a task is set without running (a branch, a
short-circuit, a trigger rule, ``upstream_failed`` descendants of a failure, a mapped task with a skipped
element; also run once with ``airflow dags test``) and a DAG whose tasks wait (deferred to the triggerer, a
sensor in reschedule mode). A person then marks the failed task success and clears a task over the REST API,
and ``airflow tasks clear`` clears another from the command line. Afterwards every task-instance try and DAG
run in the metadata database has its event, with its cause, and ``airflow integrity audit reconcile`` finds
no gap. A second cluster with the listeners switched off shows that reconcile finds every gap, and marks
each once when asked.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.verify import verify
from tests.conftest import AIRFLOW_EXAMPLES, AIRFLOW_EXAMPLES_BUNDLE
from tests.e2e.conftest import ClusterFactory, E2EPostgres
from tests.e2e.harness import AirflowCluster, poll_until

REPO = Path(__file__).resolve().parents[2]
FIXTURES = ("completeness_paths", "completeness_waits")
LOGICAL_DATE = "2025-01-01T00:00:00+00:00"
FINAL_RUN_STATES = ("success", "failed")
# Final states of a try: the states a try keeps once nothing more happens to it.
FINAL_TRY_STATES = ("success", "failed", "skipped", "upstream_failed", "removed", "up_for_retry")


def _dags_folder(tmp_path: Path, dag_ids: tuple[str, ...]) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    for dag_id in dag_ids:
        if dag_id in AIRFLOW_EXAMPLES:
            (folder / f"{dag_id}.py").symlink_to((AIRFLOW_EXAMPLES_BUNDLE / f"{dag_id}.py").resolve())
        else:
            shutil.copy(REPO / "tests" / "dag_fixtures" / f"{dag_id}.py", folder)
    return folder


def _metadata(cluster: AirflowCluster, query: str, **params: Any) -> list[Any]:
    engine = create_engine(cluster.metadata_db_uri)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query), params))
    finally:
        engine.dispose()


def _wait_until_every_run_ended(cluster: AirflowCluster, dag_ids: tuple[str, ...]) -> None:
    """Every run of ``dag_ids`` (the triggered ones and any the scheduler made) in a final state."""

    def unfinished() -> list[Any]:
        return _metadata(
            cluster,
            "SELECT dag_id, run_id, state FROM dag_run WHERE dag_id = ANY(:dag_ids) AND state <> ALL(:final)",
            dag_ids=list(dag_ids),
            final=list(FINAL_RUN_STATES),
        )

    poll_until(
        lambda: True if not unfinished() else None,
        timeout=300,
        interval=2,
        describe=lambda: f"runs not finished: {unfinished()}\n{cluster.logs_tail()}",
    )


def _try_number(cluster: AirflowCluster, run_id: str, task_id: str) -> int:
    tis = cluster.task_instances("completeness_paths", run_id)
    return int(next(ti["try_number"] for ti in tis if ti["task_id"] == task_id))


def _trigger_at(cluster: AirflowCluster, dag_id: str, logical_date: str) -> str:
    run = cluster.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": {}})
    return str(run["dag_run_id"])


def _final_states(cluster: AirflowCluster, dag_ids: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """``(dag_id, run_id, task_id, map_index, try_number, state)`` of every try Airflow holds, live and archived,
    and ``(dag_id, run_id, None, None, None, state)`` of every run."""
    tries = _metadata(
        cluster,
        "SELECT dag_id, run_id, task_id, map_index, try_number, state FROM task_instance "
        "WHERE dag_id = ANY(:dag_ids) AND state = ANY(:final) "
        "UNION ALL SELECT dag_id, run_id, task_id, map_index, try_number, state FROM task_instance_history "
        "WHERE dag_id = ANY(:dag_ids) AND state = ANY(:final)",
        dag_ids=list(dag_ids),
        final=list(FINAL_TRY_STATES),
    )
    runs = _metadata(
        cluster, "SELECT dag_id, run_id, state FROM dag_run WHERE dag_id = ANY(:dag_ids)", dag_ids=list(dag_ids)
    )
    return [tuple(row) for row in tries] + [(r.dag_id, r.run_id, None, None, None, r.state) for r in runs]


def _events(store_uri: str) -> list[Any]:
    store = IntegrityStore(StoreLocation.from_url(store_uri))
    AuditLog(store).chain_pending()
    return [record for _, record in iter_records(store) if not isinstance(record, str)]


def _without_event(states: list[tuple[Any, ...]], events: list[Any]) -> list[tuple[Any, ...]]:
    have = Counter((e.dag_id, e.run_id, e.task_id, e.map_index, e.try_number, e.event_type) for e in events)
    missing = []
    for dag_id, run_id, task_id, map_index, try_number, state in states:
        kind = "task_instance" if task_id is not None else "dag_run"
        accepted = [state, "up_for_retry"] if state == "failed" else [state]
        if not any(have[(dag_id, run_id, task_id, map_index, try_number, f"{kind}.{s}")] for s in accepted):
            missing.append((dag_id, run_id, task_id, map_index, try_number, state))
    return missing


def _reconcile(cluster: AirflowCluster, *args: str) -> tuple[int, str]:
    done = cluster.airflow_cli("integrity", "audit", "reconcile", "--grace", "0", *args)
    return done.returncode, done.stdout + done.stderr


def _one(events: list[Any], **match: Any) -> Any:
    found = [e for e in events if all(getattr(e, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


@pytest.mark.requirement("hipaa.164.312b", "part11.11.10e")
@pytest.mark.e2e
def test_every_state_on_a_cluster_has_its_event_with_its_cause(
    airflow_cluster_factory: ClusterFactory, e2e_pg: E2EPostgres, tmp_path: Path
) -> None:
    store_uri = e2e_pg.create_database("store")
    dag_ids = (*AIRFLOW_EXAMPLES, *FIXTURES)
    env = {"AIRFLOW_CONN_INTEGRITY_DEFAULT": store_uri, "AIRFLOW__CORE__PARALLELISM": "8"}
    cluster = airflow_cluster_factory(_dags_folder(tmp_path, dag_ids), env=env)
    with cluster:
        for dag_id in dag_ids:
            cluster.wait_for_dag(dag_id, timeout=180)
        paths = _trigger_at(cluster, "completeness_paths", LOGICAL_DATE)
        runs = {dag_id: cluster.trigger(dag_id) for dag_id in dag_ids if dag_id != "completeness_paths"}
        runs["completeness_paths"] = paths
        _wait_until_every_run_ended(cluster, dag_ids)
        assert cluster.dag_run("completeness_paths", paths)["state"] == "failed"  # charge fails; retries=0

        # A person marks the failed charge success, then clears one task; the command line clears another.
        ti_path = f"/api/v2/dags/completeness_paths/dagRuns/{paths}/taskInstances"
        cluster.api("PATCH", f"{ti_path}/charge", json={"new_state": "success"})
        cluster.api(
            "POST",
            "/api/v2/dags/completeness_paths/clearTaskInstances",
            json={"dry_run": False, "dag_run_id": paths, "task_ids": ["approve"], "only_failed": False},
        )
        _wait_until_every_run_ended(cluster, dag_ids)
        cleared = cluster.airflow_cli(
            "tasks", "clear", "completeness_paths", "-t", "choose", "-s", LOGICAL_DATE, "-e", LOGICAL_DATE, "-y"
        )
        assert cleared.returncode == 0, cleared.stderr
        poll_until(
            lambda: True if _try_number(cluster, paths, "choose") == 2 else None,
            timeout=120,
            describe=lambda: (
                f"choose never ran again: {cleared}\n{cluster.task_instances('completeness_paths', paths)}"
            ),
        )
        _wait_until_every_run_ended(cluster, dag_ids)
        # The same DAG under `airflow dags test`, beside the cluster, on the same databases. Paused first: the
        # scheduler then leaves the test's run alone (both updating its dag_run row deadlocked once in CI).
        cluster.api("PATCH", "/api/v2/dags/completeness_paths", json={"is_paused": True})
        tested = cluster.airflow_cli("dags", "test", "completeness_paths")
        assert tested.returncode == 1 and "DagRun failed" in tested.stderr, tested.stderr[-3000:]  # charge fails

        states = _final_states(cluster, dag_ids)
        code, report = _reconcile(cluster)
        waits_log = _metadata(
            cluster,
            "SELECT event, dttm, task_id, map_index, try_number FROM log WHERE dag_id = 'completeness_waits' "
            "ORDER BY dttm",
        )
        logs = cluster.logs_tail()

    events = _events(store_uri)
    assert _without_event(states, events) == [], logs
    assert code == 0 and " 0 state(s) without their event" in report, report
    assert verify(IntegrityStore(StoreLocation.from_url(store_uri))).ok

    under_test = {r[1] for r in states if r[0] == "completeness_paths" and r[1] != paths}
    assert len(under_test) == 1 and any(e.run_id in under_test for e in events)

    mine = [e for e in events if e.run_id == paths]
    # Set without running, with the cause Airflow knows.
    skipped = _one(mine, event_type="task_instance.skipped", task_id="reject")
    assert skipped.details["cause"] == {"kind": "branch", "task_id": "choose", "followed": ["approve"]}
    short = _one(mine, event_type="task_instance.skipped", task_id="archive_documents")
    assert short.details["cause"]["kind"] == "skipped_by_upstream" and short.actor.startswith("scheduler@")
    failed_up = _one(mine, event_type="task_instance.upstream_failed", task_id="receipt")
    assert failed_up.details["cause"]["upstream"] == {"charge": "failed"}
    assert failed_up.details["cause"]["trigger_rule"] == "all_success"
    element = _one(mine, event_type="task_instance.skipped", task_id="check")
    assert element.map_index == 1 and element.actor.startswith("worker@")
    # The person's mark, with the request; the person's clear and the command line's clear, with who asked.
    marked = _one(mine, event_type="task_instance.success", task_id="charge")
    assert marked.actor == cluster.username and marked.details["cause"]["kind"] == "person"
    assert marked.details["cause"]["request"].startswith(f"PATCH /api/v2/dags/completeness_paths/dagRuns/{paths}")
    by_rest = _one(mine, event_type="task_instance.cleared", task_id="approve", try_number=1)
    assert by_rest.actor == cluster.username
    assert by_rest.details["cause"]["authenticated"] is True
    assert by_rest.details["cause"]["request"] == "post_clear_task_instances"
    by_cli = _one(mine, event_type="task_instance.cleared", task_id="choose", try_number=1)
    assert by_cli.actor.endswith("(command line, not authenticated)"), by_cli
    assert (
        by_cli.details["cause"]["authenticated"] is False
        and by_cli.details["cause"]["request"] == "cli_task_clear"
    )
    assert _one(mine, event_type="task_instance.success", task_id="approve", try_number=2)
    # The waits: deferred and resumed, rescheduled.
    waits = [e for e in events if e.run_id == runs["completeness_waits"]]
    kinds = [e.event_type for e in waits if e.task_id == "wait_for_cutoff"]
    assert "task_instance.resumed" in kinds, (kinds, waits_log)
    assert kinds.index("task_instance.deferred") < kinds.index("task_instance.resumed"), kinds
    assert "task_instance.up_for_reschedule" in [e.event_type for e in waits if e.task_id == "documents_arrived"]
    # Airflow's branch example: every skip names the branch task that chose.
    branch = [e for e in events if e.run_id == runs["example_branch_operator"]]
    skips = [e for e in branch if e.event_type == "task_instance.skipped"]
    assert skips and all(e.details["cause"]["kind"] in ("branch", "trigger_rule") for e in skips), skips
    assert any(e.details["cause"].get("task_id") == "branching" for e in skips), skips


@pytest.mark.requirement("alcoa.complete")
@pytest.mark.e2e
def test_with_the_listeners_off_reconcile_on_a_cluster_lists_every_gap(
    airflow_cluster_factory: ClusterFactory, e2e_pg: E2EPostgres, tmp_path: Path
) -> None:
    store_uri = e2e_pg.create_database("store")
    dag_ids = ("example_branch_operator", "completeness_paths")
    env = {"AIRFLOW_CONN_INTEGRITY_DEFAULT": store_uri, "AIRFLOW__INTEGRITY__AUDIT_LISTENERS": "False"}
    cluster = airflow_cluster_factory(_dags_folder(tmp_path, dag_ids), env=env)
    with cluster:
        for dag_id in dag_ids:
            cluster.wait_for_dag(dag_id, timeout=180)
        for dag_id in dag_ids:
            cluster.trigger(dag_id)
        _wait_until_every_run_ended(cluster, dag_ids)
        states = _final_states(cluster, dag_ids)
        first, listed = _reconcile(cluster, "--record-gaps")
        second, again = _reconcile(cluster, "--record-gaps")

    events = _events(store_uri)
    assert first == 1 and second == 1, (listed, again)
    assert not [e for e in events if e.event_type.startswith(("task_instance.", "dag_run."))], [
        (e.event_type, e.task_id, e.actor) for e in events
    ]
    for dag_id, run_id, task_id, _, _, state in states:
        what = f"{'task_instance' if task_id else 'dag_run'}.{state} missing: {dag_id} / {run_id}"
        assert what in listed, (what, listed)
    recorded = int(listed.split("Recorded ")[1].split(" ")[0])
    markers = [e for e in events if e.event_type == "reconciliation.gap"]
    assert recorded == len(markers) >= len(states)
    marked = Counter((m.run_id, m.task_id, m.map_index, m.try_number, m.details["missing"]) for m in markers)
    assert marked.most_common(1)[0][1] == 1, marked  # one marker per gap
    assert "Recorded" not in again and "[marked in the trail]" in again
