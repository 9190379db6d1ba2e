"""Compare what Airflow's metadata calls for with the trail, and record what is missing.

A gap is an event a DAG run's metadata calls for (:mod:`~airflow_integrity.completeness.expected`) that the
trail does not hold: matched by event type, task instance and try, one trail event per expected event. An outcome
a worker's listener records is given a moment (``grace``) before its absence counts, since the worker records it
just after it told the API server.

What is missing is recorded either as the state event itself (``task_instance.skipped``, ..., with the time
Airflow set the state and its cause in the details, marked ``recorded_by``): what the end of a run and the
scheduler's sweep do, so that every state has its event; or, by ``airflow integrity audit reconcile
--record-gaps`` after an outage, as a ``reconciliation.gap`` event per gap, which states that the event is missing
and what the metadata says, without pretending to be the event.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_integrity.completeness.expected import Expected, expected_events
from airflow_integrity.completeness.metadata import Run

GAP_EVENT = "reconciliation.gap"
# How long a worker has to record an outcome after the API server stored it.
WORKER_GRACE = dt.timedelta(seconds=30)

_Key = tuple[str, Any, Any, Any]


@dataclass(frozen=True)
class Gap:
    """An event the metadata of run ``run_id`` of ``dag_id`` calls for and the trail does not hold.

    ``marked``: a ``reconciliation.gap`` event already states it (recorded by an earlier ``--record-gaps``).
    """

    dag_id: str
    run_id: str
    version_id: str | None
    expected: Expected
    marked: bool = False

    def describe(self) -> str:
        """One line for people."""
        e = self.expected
        where = f"{self.dag_id} / {self.run_id}"
        if e.task_id is not None:
            where += f" / {e.task_id}" + (f"[{e.map_index}]" if e.map_index not in (None, -1) else "")
            where += f" try {e.try_number}"
        cause = e.details.get("cause")
        why = f" ({cause.get('kind')})" if isinstance(cause, dict) and cause.get("kind") else ""
        marked = " [marked in the trail]" if self.marked else ""
        return f"{e.event_type} missing: {where}, at {e.details.get('at') or 'an unknown time'}{why}{marked}"


def trail_events(store: Any, dag_id: str, run_id: str) -> Counter[_Key]:
    """How many events of each type, task instance and try the trail holds for a run (pending ones chained
    first, so that an event recorded a moment ago counts)."""
    from airflow_integrity.store.audit.chain import AuditLog
    from airflow_integrity.store.audit.export import iter_records

    AuditLog(store).chain_pending()
    found: Counter[_Key] = Counter()
    for _, record in iter_records(store, dag_id=dag_id, run_id=run_id):
        if isinstance(record, str):
            continue
        event_type = record.event_type
        if event_type == GAP_EVENT:
            event_type = f"{GAP_EVENT}:{record.details.get('missing')}"
        found[(event_type, record.task_id, record.map_index, record.try_number)] += 1
    return found


def find_gaps(
    store: Any,
    runs: Iterable[Run],
    *,
    now: dt.datetime | None = None,
    grace: dt.timedelta = WORKER_GRACE,
    include_final_run_state: bool = True,
) -> list[Gap]:
    """Every gap of ``runs``.

    Args:
        store: The integrity store.
        runs: Runs as read from the metadata database.
        now: The time against which ``grace`` is counted (default: now).
        grace: How long an outcome a worker records may be missing before it counts.
        include_final_run_state: Whether the run's own final state counts (not when the listener that records
            it asks, just before recording it).
    """
    now = now or dt.datetime.now(dt.UTC)
    gaps = []
    for run in runs:
        have = trail_events(store, run.dag_id, run.run_id)
        for expected in expected_events(run, include_final_run_state=include_final_run_state):
            if expected.by_worker and expected.at is not None and now - _aware(expected.at) < grace:
                continue
            for event_type in (expected.event_type, *expected.accepts):
                key = (event_type, *expected.key)
                if have[key] > 0:
                    have[key] -= 1
                    break
            else:
                marker = (f"{GAP_EVENT}:{expected.event_type}", *expected.key)
                marked = have[marker] > 0
                if marked:
                    have[marker] -= 1
                gaps.append(Gap(run.dag_id, run.run_id, run.version_id, expected, marked))
    return gaps


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def gap_events(gaps: Sequence[Gap], *, recorded_by: str, as_markers: bool = False) -> list[Any]:
    """The audit events that fill ``gaps``: the missing events themselves, or ``reconciliation.gap`` markers."""
    from airflow_integrity.identity import actor
    from airflow_integrity.store.audit.event import AuditEvent

    events = []
    for gap in gaps:
        e = gap.expected
        details = {**e.details, "recorded_by": recorded_by}
        if as_markers:
            details = {"missing": e.event_type, **details}
        events.append(
            AuditEvent(
                event_type=GAP_EVENT if as_markers else e.event_type,
                actor=actor(e.actor),
                dag_id=gap.dag_id,
                run_id=gap.run_id,
                dag_version=gap.version_id,
                task_id=e.task_id,
                map_index=e.map_index,
                try_number=e.try_number,
                details=details,
            )
        )
    return events
