"""Which audit events a DAG run's metadata calls for, each with the cause Airflow knows.

Every try of every task instance that a worker started calls for ``task_instance.running`` and, once over, for
its outcome (``success``, ``failed``, ``up_for_retry``, ``skipped``): the worker's listener records those. Every
state Airflow sets without running the task calls for its event too, recorded by whoever notices it first (the
end of the run, the scheduler's sweep, or ``audit reconcile --record-gaps``): ``skipped`` by a branch, a
short-circuit or a trigger rule, ``upstream_failed``, ``removed``, ``success`` without running (an
``EmptyOperator``), an outcome a killed worker never reported, ``deferred`` and ``resumed``,
``up_for_reschedule``, ``cleared`` (by a person through the API, or on the command line), and for the run
``dag_run.queued`` (who created it) and ``dag_run.running``.

``scheduled`` and ``queued`` of a task instance call for no event: they are the scheduler's own steps towards
running it, and every try that runs has its ``running`` event; the trail reconstructs the order from those.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_integrity.completeness.metadata import CLEAR_LOG_EVENTS, LogRow, Run, Try

# Outcomes a worker's listener records for a try it ran.
WORKER_OUTCOMES = ("success", "failed", "up_for_retry", "skipped")
# States Airflow sets on a task instance without running it.
SET_WITHOUT_RUNNING = ("skipped", "upstream_failed", "removed", "success", "failed")


@dataclass(frozen=True)
class Expected:
    """An event the metadata calls for.

    Args:
        event_type: The event, for example ``task_instance.skipped``.
        task_id, map_index, try_number: The task instance and try (``None`` for a DAG-run event).
        at: When Airflow set the state (its own times), if known.
        accepts: Event types that also satisfy it (a try archived as ``failed`` was reported ``up_for_retry``).
        by_worker: A worker's listener records it (so it may arrive a moment after the state is set).
        actor: The person who caused it, when Airflow's log names one.
        details: The state, its time and its cause, for the event recorded when it is missing.
    """

    event_type: str
    task_id: str | None
    map_index: int | None
    try_number: int | None
    at: dt.datetime | None
    accepts: tuple[str, ...] = ()
    by_worker: bool = False
    actor: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str | None, int | None, int | None]:
        """The task instance and try it is about."""
        return (self.task_id, self.map_index, self.try_number)


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat()


def _event(
    kind: str, state: str, t: Try | None, at: dt.datetime | None, cause: dict[str, Any] | None, **options: Any
) -> Expected:
    details: dict[str, Any] = {"state": state, "at": _iso(at)}
    if cause:
        details["cause"] = cause
    return Expected(
        f"{kind}.{state}",
        None if t is None else t.task_id,
        None if t is None else t.map_index,
        None if t is None else t.try_number,
        at,
        details=details,
        **options,
    )


def expected_events(run: Run, *, include_final_run_state: bool = True) -> list[Expected]:
    """The events ``run`` calls for, in the order Airflow set the states.

    Args:
        run: The run as :func:`~airflow_integrity.completeness.metadata.read_runs` read it.
        include_final_run_state: Whether the run's own final state counts (the end-of-run listener records
            it after this check).
    """
    started = Counter((row.task_id, row.map_index, row.try_number) for row in run.log if row.event == "running")
    events: list[Expected] = []
    for t in run.tries:
        ran = started[(t.task_id, t.map_index, t.try_number)] > 0
        if ran:
            events.append(_event("task_instance", "running", t, t.start_date, None, by_worker=True))
        events.extend(_outcome(run, t, ran))
    events.extend(_cleared(run))
    events.extend(_from_log(run))
    events.extend(_run_events(run, include_final_run_state))
    return sorted(events, key=lambda e: (e.at is None, e.at or dt.datetime.min.replace(tzinfo=dt.UTC)))


def _outcome(run: Run, t: Try, ran: bool) -> list[Expected]:
    state = t.state
    if state is None or state not in WORKER_OUTCOMES + SET_WITHOUT_RUNNING:
        return []
    accepts = ("up_for_retry",) if state == "failed" and not t.current else ()
    if ran and state in WORKER_OUTCOMES:
        cause = {"kind": "ended_without_report"} if state in ("failed", "up_for_retry") else None
        return [_event("task_instance", state, t, t.at, cause, accepts=accepts, by_worker=True)]
    return [_event("task_instance", state, t, t.at, cause_of(run, t), accepts=accepts)]


def cause_of(run: Run, t: Try) -> dict[str, Any]:
    """Why Airflow set ``t``'s state without a worker reporting it, as far as the metadata tells."""
    if t.state == "removed":
        return {"kind": "removed", "reason": "the task is not in the DAG version the run was created from"}
    if t.state == "success":
        return {"kind": "not_run", "reason": "set to success without running (an EmptyOperator, or a person)"}
    if t.state == "failed":
        return {"kind": "not_run", "reason": "set to failed without running (by the scheduler, or a person)"}
    task = run.tasks.get(t.task_id)
    if t.state == "skipped" and task is not None:
        for upstream in task.upstream:
            choice = run.choices.get(upstream) or {}
            if "followed" in choice and t.task_id not in (choice.get("followed") or []):
                return {"kind": "branch", "task_id": upstream, "followed": choice.get("followed")}
            if t.task_id in (choice.get("skipped") or []):
                return {"kind": "skipped_by_upstream", "task_id": upstream, "skipped": choice.get("skipped")}
    if task is None:
        return {"kind": "unknown", "reason": "the DAG version of the run could not be read"}
    return {"kind": "trigger_rule", "trigger_rule": task.trigger_rule, "upstream": _upstream_states(run, task)}


def _upstream_states(run: Run, task: Any) -> dict[str, Any]:
    states: dict[str, Counter[str]] = {u: Counter() for u in task.upstream}
    for t in run.tries:
        if t.current and t.task_id in states:
            states[t.task_id][t.state or "none"] += 1
    return {u: (next(iter(c)) if sum(c.values()) == 1 else dict(c)) for u, c in states.items()}


def _cleared(run: Run) -> list[Expected]:
    """A try was cleared when the history holds it and a later try exists or the live row waits again."""
    archived = [t for t in run.tries if not t.current]
    live = {(t.task_id, t.map_index): t for t in run.tries if t.current}
    events = []
    for t in archived:
        later = live.get((t.task_id, t.map_index))
        request = _clear_request(run.log, t, later)
        retried = t.state in ("failed", "up_for_retry") and request is None
        if retried:
            continue
        cause: dict[str, Any] = {"kind": "cleared"}
        actor = None
        if request is not None:
            cli = request.event.startswith("cli_")
            cause.update(request=request.event, by=request.owner, authenticated=not cli)
            if cli:
                cause["command"] = _extra(request).get("full_command")
            actor = f"{request.owner} (command line, not authenticated)" if cli else request.owner
        at = request.at if request is not None else t.end_date
        events.append(_event("task_instance", "cleared", t, at, cause, actor=actor))
    return events


def _clear_request(log: list[LogRow], t: Try, later: Try | None) -> LogRow | None:
    """The clear request that archived ``t``: the last one between the end of ``t`` and the start of the next
    try that may have named it (an earlier one in that window cleared other tasks)."""
    start = t.end_date or t.updated_at
    end = later.start_date if later is not None and later.try_number > t.try_number else None
    found = None
    for row in log:
        if row.event not in CLEAR_LOG_EVENTS or row.at is None or start is None:
            continue
        if row.task_id not in (None, t.task_id) or not _may_name(row, t.task_id):
            continue
        if (
            row.at >= start
            and (end is None or row.at <= end)
            and (found is None or found.at is None or row.at >= found.at)
        ):
            found = row
    return found


def _may_name(row: LogRow, task_id: str) -> bool:
    """Whether a clear request may have cleared ``task_id``: an API request lists its tasks (``task_ids``,
    each a task id or ``[task id, map index]``) unless it also takes their relatives."""
    extra = _extra(row)
    named = extra.get("task_ids")
    if not isinstance(named, list) or extra.get("include_upstream") or extra.get("include_downstream"):
        return True
    return any(item == task_id or (isinstance(item, list) and item[:1] == [task_id]) for item in named)


def _extra(row: LogRow) -> dict[str, Any]:
    try:
        value = json.loads(row.extra or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _from_log(run: Run) -> list[Expected]:
    """Deferrals, their resumption, and reschedules, from the rows the Execution API writes for each."""
    events = []
    for row in run.log:
        if row.event not in ("deferred", "up_for_reschedule") or row.task_id is None:
            continue
        map_index = -1 if row.map_index is None else int(row.map_index)
        t = Try(row.task_id, map_index, int(row.try_number or 0), row.event, None, row.at, None, None, False)
        host = _extra(row).get("host_name")
        events.append(_event("task_instance", row.event, t, row.at, {"kind": "reported", "host": host}))
        if row.event == "deferred":
            # The next start of the same task instance: normally the same try; a try Airflow renumbered when the
            # trigger fired before the deferring process's end was handled still resumed the deferral.
            resumed = next(
                (
                    later
                    for later in run.log
                    if later.event == "running"
                    and (later.task_id, later.map_index) == (row.task_id, row.map_index)
                    and int(later.try_number or 0) >= int(row.try_number or 0)
                    and later.at is not None
                    and row.at is not None
                    and later.at > row.at
                ),
                None,
            )
            if resumed is not None:
                cause = {"kind": "trigger", "deferred_at": _iso(row.at)}
                again = replace(t, try_number=int(resumed.try_number or 0))
                events.append(_event("task_instance", "resumed", again, resumed.at, cause))
    return events


def _run_events(run: Run, include_final: bool) -> list[Expected]:
    events = []
    if run.queued_at is not None:
        created = {"triggered_by": run.triggered_by, "triggering_user": run.triggering_user}
        events.append(_event("dag_run", "queued", None, run.queued_at, created, actor=run.triggering_user))
    if run.start_date is not None:
        events.append(_event("dag_run", "running", None, run.start_date, None))
    if include_final and run.state in ("success", "failed"):
        events.append(_event("dag_run", run.state, None, run.end_date, None))
    for event in events:
        # Every run event names how the run was made, as the run listener's events do.
        event.details["run_type"] = run.run_type
    return events
