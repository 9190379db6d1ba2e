"""Approvals answered the moment they ask, on a real cluster: how many Airflow fails, with and without the hold.

Airflow 3.3 fails a human-in-the-loop task whose answer re-queues it before the scheduler has handled the end
of the process that parked it ("state mismatch"; ``docs/airflow-hitl-state-mismatch.md``). The plugin's API
server middleware holds such an answer until the question is ``[integrity] approval_settle_seconds`` old.

Each cluster (LocalExecutor, parallelism 4, PostgreSQL metadata database and SQLite store) runs
``tests/e2e/dags_approvals/quick_approvals.py`` (six approvals side by side) ``--runs`` times. A client polls the
run every 0.1 s and answers each approval over REST as soon as it is ``awaiting_input``, each answer in a
thread of its own. Counted per cluster: approvals answered, tasks that succeeded, tasks that failed or were
left up for retry, Airflow's "state mismatch" log entries, and how long the answer call took. The baseline is
the same cluster with the hold off (``approval_settle_seconds = 0``: Airflow alone).

    python bench/quick_approvals.py [--runs 4] [--settle 5]
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.approvals import approve_each_as_asked, state_mismatches  # noqa: E402
from tests.e2e.harness import AirflowCluster  # noqa: E402
from tests.pg import PostgresServer, start_postgres  # noqa: E402

DAGS = REPO / "tests" / "e2e" / "dags_approvals"
DAG_ID = "quick_approvals"
APPROVALS = 6
TASKS = {f"approve_{number}" for number in range(1, APPROVALS + 1)}
# The supervisor's line once a try's process has ended (LocalExecutor: in the scheduler's log).
_PARKED = re.compile(r"Workload finished\s+\[supervisor\] duration=([0-9.]+) .*final_state=awaiting_input")


def _cluster(pg: PostgresServer, work: Path, settle: float, runs: int) -> dict[str, Any]:
    name = f"settle-{settle:g}"
    metadata_db = f"bench_quick_{name.replace('.', '_').replace('-', '_')}"
    pg.create_database(metadata_db)
    home = work / name
    shutil.rmtree(home, ignore_errors=True)
    env = {
        "AIRFLOW_CONN_INTEGRITY_DEFAULT": f"sqlite:///{home / 'integrity.db'}",
        "AIRFLOW__INTEGRITY__APPROVAL_SETTLE_SECONDS": str(settle),
    }
    outcome: dict[str, Any] = {
        "answered": 0,
        "success": 0,
        "failed": 0,
        "mismatches": 0,
        "latencies": [],
        "parked_reported": [],
    }
    try:
        cluster = AirflowCluster(
            home=home, dags_folder=DAGS, metadata_db_uri=pg.uri(metadata_db), env=env, pycache_dir=work / "pycache"
        )
        with cluster:
            cluster.wait_for_dag(DAG_ID, timeout=180)
            for _ in range(runs):
                run_id = cluster.trigger(DAG_ID)
                answers = approve_each_as_asked(cluster, DAG_ID, run_id, TASKS)
                latencies = list(answers.seconds.values()) or [0.0]
                cluster.wait_for_run(DAG_ID, run_id, timeout=300)
                states = [ti["state"] for ti in cluster.task_instances(DAG_ID, run_id)]
                mismatches = len(state_mismatches(cluster, DAG_ID, run_id))
                outcome["answered"] += len(answers.seconds)
                outcome["latencies"].extend(answers.seconds.values())
                outcome["success"] += states.count("success")
                outcome["failed"] += len(states) - states.count("success")
                outcome["mismatches"] += mismatches
                print(
                    f"  {name:>10} {run_id}: {states.count('success')}/{len(states)} succeeded, "
                    f"{mismatches} state mismatches, answer calls "
                    f"{min(latencies):.2f}-{max(latencies):.2f} s",
                    flush=True,
                )
            outcome["parked_reported"] = [float(m) for m in _PARKED.findall(cluster.component_log("scheduler"))]
    finally:
        with contextlib.suppress(Exception):
            pg.drop_database(metadata_db)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4, help="runs of the DAG per cluster")
    parser.add_argument("--settle", type=float, default=5.0, help="the hold of the measured cluster")
    parser.add_argument("--keep", action="store_true", help="keep the clusters' homes (logs) and print where")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-quick-approvals-"))
    for variable in [v for v in os.environ if v.startswith(("AIRFLOW_CONN_", "AIRFLOW__INTEGRITY__"))]:
        del os.environ[variable]
    os.environ["AIRFLOW_HOME"] = str(work / "client-home")
    print(
        f"approvals answered at once: {APPROVALS} per run, {args.runs} runs per cluster, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    try:
        with start_postgres(work, external_env="INTEGRITY_BENCH_PG_URI") as pg:
            settles = (0.0, args.settle) if args.settle > 0 else (0.0,)
            outcomes = {settle: _cluster(pg, work, settle, args.runs) for settle in settles}
    finally:
        if args.keep:
            print(f"clusters' homes kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for settle, outcome in outcomes.items():
        latencies = outcome["latencies"] or [0.0]
        label = "hold off (Airflow alone)" if settle == 0 else f"hold {settle:g} s"
        print(
            f"{label:<26} {outcome['success']:3d} of {outcome['answered']:3d} answered approvals succeeded, "
            f"{outcome['failed']:3d} failed, {outcome['mismatches']:3d} state mismatches; answer call median "
            f"{statistics.median(latencies):.2f} s (max {max(latencies):.2f})"
        )
        reported = sorted(outcome["parked_reported"]) or [0.0]
        late = [seconds for seconds in reported if seconds >= 1.0]
        print(
            f"{'':<26} parking processes reported after {reported[0]:.1f}-{reported[-1]:.1f} s; "
            f"{len(late)} of {len(outcome['parked_reported'])} after 1 s or more"
            + (f" ({min(late):.1f}-{max(late):.1f} s)" if late else "")
        )


if __name__ == "__main__":
    main()
