"""Smoke test of the end-to-end harness: a real cluster runs a tiny DAG triggered over REST."""

from __future__ import annotations

import contextlib
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path

import psutil
import pytest

from tests.e2e.conftest import ClusterFactory, E2EPostgres
from tests.e2e.harness import AirflowCluster

DAG_ID = "e2e_harness_smoke"

DAG_SOURCE = textwrap.dedent(
    f'''
    """A two-task DAG for the harness smoke test."""

    from __future__ import annotations

    import time

    import pendulum

    from airflow.sdk import dag, get_current_context, task


    @dag(
        dag_id="{DAG_ID}",
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
    )
    def smoke():
        @task
        def produce() -> dict:
            conf = get_current_context()["dag_run"].conf or {{}}
            return {{"echo": conf.get("echo"), "answer": 42}}

        @task
        def pause(value: dict) -> str:
            time.sleep(1)
            return value["echo"]

        pause(produce())


    smoke()
    '''
)


def _processes_of_home(home: Path) -> list[str]:
    """Describe live processes whose environment or command line belongs to ``home``."""
    home_str = str(home)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.environ().get("AIRFLOW_HOME") == home_str or home_str in cmdline:
                found.append(f"{proc.info['pid']}: {cmdline}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _process_tree(pids: Iterable[int]) -> list[psutil.Process]:
    """The given processes and all their current descendants."""
    tree = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            tree.extend([root, *root.children(recursive=True)])
    return tree


def _still_alive(processes: Iterable[psutil.Process]) -> list[str]:
    """Describe the processes that still run (the same process, not a reused PID; zombies excluded)."""
    alive = []
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{proc.pid}: {' '.join(proc.cmdline())}")
    return alive


@pytest.mark.e2e
def test_cluster_runs_a_dag_triggered_over_rest(
    airflow_cluster_factory: ClusterFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Start a cluster, trigger a DAG with conf over REST, see it succeed, and leave no process behind."""
    dags_folder = tmp_path / "dags"
    dags_folder.mkdir()
    (dags_folder / "smoke_dag.py").write_text(DAG_SOURCE)
    cluster = airflow_cluster_factory(dags_folder)

    started = time.monotonic()
    with cluster:
        cluster.wait_for_dag(DAG_ID, timeout=120)
        until_dag_visible = time.monotonic() - started

        run_started = time.monotonic()
        run_id = cluster.trigger(DAG_ID, conf={"echo": "hello"}, run_id="smoke_run_1")
        state = cluster.wait_for_run(DAG_ID, run_id, timeout=120)
        run_seconds = time.monotonic() - run_started

        tis = cluster.task_instances(DAG_ID, run_id)
        diagnostics = f"{tis}\n{cluster.task_log(DAG_ID, run_id, 'produce')}\n{cluster.logs_tail()}"
        assert run_id == "smoke_run_1"
        assert state == "success", diagnostics
        assert sorted(ti["task_id"] for ti in tis) == ["pause", "produce"], diagnostics
        assert all(ti["state"] == "success" for ti in tis), diagnostics
        assert cluster.dag_run(DAG_ID, run_id)["conf"] == {"echo": "hello"}
        assert cluster.returned(DAG_ID, run_id, "produce") == {"echo": "hello", "answer": 42}
        assert cluster.returned(DAG_ID, run_id, "pause") == "hello"
        assert cluster.token().count(".") == 2
        tree = _process_tree(cluster.component_pids.values())
        assert len(tree) > len(cluster.component_pids)

    assert cluster.surviving_processes() == []
    assert _processes_of_home(cluster.home) == []
    assert _still_alive(tree) == []

    timings = {
        "migrate": cluster.timings["migrate"],
        "components_until_healthy": cluster.timings["start_until_healthy"],
        "start_until_dag_visible": until_dag_visible,
        "run": run_seconds,
        "teardown": cluster.timings["teardown"],
    }
    with capsys.disabled():
        print("\ne2e harness timings (s): " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items()))


@pytest.mark.e2e
def test_failed_startup_raises_and_leaves_no_process(
    e2e_pg: E2EPostgres, e2e_pycache: Path, tmp_path: Path
) -> None:
    """A cluster whose metadata database does not exist fails in ``__enter__`` and cleans up after itself."""
    cluster = AirflowCluster(
        home=tmp_path / "home",
        dags_folder=tmp_path,
        metadata_db_uri=e2e_pg.server.uri("e2e_missing_database"),
        pycache_dir=e2e_pycache,
    )
    with pytest.raises(RuntimeError, match="db migrate"), cluster:
        pytest.fail("the cluster must not start")
    assert cluster.surviving_processes() == []
    assert _processes_of_home(cluster.home) == []
