"""Where missing state events get recorded: at the end of each DAG run, and in the scheduler's periodic sweep.

At the end of a run (the DAG-run listener, in the scheduler, the API server or ``dag.test``) the run's metadata is
read through the caller's own session (reads only: it sees the states set in the same transaction and never
commits it) and the missing events are recorded before the run's final event, so that the trail tells the run in
order. A worker's outcome that has not arrived yet is left to the sweep.

The sweep runs in the scheduler, every ``[integrity] completeness_interval`` seconds, over the runs still going
and those that ended in the last few minutes: what a worker never reported (a killed task), and what changed in
a long run meanwhile (a skip, a clear, a deferral) is recorded there.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

from airflow_integrity.completeness.gaps import find_gaps, gap_events
from airflow_integrity.completeness.metadata import Run, read_dag_run, read_runs

log = logging.getLogger(__name__)

AT_RUN_END = "the end of the DAG run"
IN_SWEEP = "the scheduler's sweep"
# Runs that ended this long ago are still swept (a worker's last outcome, a killed task).
_RECENTLY_ENDED = dt.timedelta(minutes=10)


def record_missing(runs: list[Run], *, recorded_by: str, include_final_run_state: bool) -> int:
    """Record the events ``runs`` call for that the trail lacks; return how many."""
    from airflow_integrity.hooks.integrity import IntegrityCheckHook

    hook = IntegrityCheckHook()
    gaps = find_gaps(hook.get_store(), runs, include_final_run_state=include_final_run_state)
    if gaps:
        hook.record_events(gap_events(gaps, recorded_by=recorded_by), keep=True)
        log.info("airflow-integrity: recorded %d state event(s) no listener recorded (%s)", len(gaps), recorded_by)
    return len(gaps)


def run_at_its_end(dag_run: Any) -> list[Run]:
    """``dag_run`` as its end sees it: read through the caller's own session when it has one (so the states set
    in the same transaction are seen, and nothing is committed), else through a new one."""
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is not None:
        return [read_dag_run(session, dag_run)]
    from airflow.utils.session import create_session

    with create_session() as own:
        return read_runs(own, [(dag_run.dag_id, dag_run.run_id)])


def sweep_once(now: dt.datetime | None = None) -> int:
    """Record missing state events of the runs still going and of those that ended lately; return how many."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import or_, select

    started = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC)
    with create_session() as session:
        keys = session.execute(
            select(DagRun.dag_id, DagRun.run_id).where(
                or_(DagRun.state.in_(("queued", "running")), DagRun.end_date >= now - _RECENTLY_ENDED)
            )
        ).all()
        runs = read_runs(session, [(k.dag_id, k.run_id) for k in keys])
    recorded = record_missing(runs, recorded_by=IN_SWEEP, include_final_run_state=True) if runs else 0
    # Quiet while there is nothing to sweep: an idle scheduler would log it every interval.
    (log.info if runs else log.debug)(
        "airflow-integrity: completeness sweep of %d run(s) in %.0f ms, %d state event(s) recorded",
        len(runs),
        (time.perf_counter() - started) * 1000,
        recorded,
    )
    return recorded


class Sweeper:
    """Run :func:`sweep_once` every ``interval`` seconds in a daemon thread (one per process)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="integrity-completeness-sweep", daemon=True)

    def start(self) -> Sweeper:
        """Start sweeping."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current sweep."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sweep_once()
            except Exception:
                log.exception(
                    "airflow-integrity: the completeness sweep failed; it runs again in %s s", self.interval
                )
