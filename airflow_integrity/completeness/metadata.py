"""What Airflow's metadata database says happened in some DAG runs: the raw material of completeness.

Read through a session the caller owns (a listener reads through the scheduler's or ``dag.test``'s own session,
never committing it; the sweeper and the ``audit reconcile`` command open their own): every task instance and
every earlier try (``task_instance_history``), the rows Airflow's own log keeps of state changes reported by
workers and of actions by people (``log``), the choices of branching tasks (their ``skipmixin_key`` XCom), the DAG
runs, and the structure of the DAG version each run was created from (trigger rules, upstream tasks).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Airflow's own log events that change or act on task states.
STATE_LOG_EVENTS = ("running", "deferred", "up_for_reschedule")
CLEAR_LOG_EVENTS = (
    "post_clear_task_instances",
    "clear_dag_run",
    "cli_task_clear",
    "cli_dag_clear",
    "cli_clear",
)
SKIPMIXIN_KEY = "skipmixin_key"


@dataclass(frozen=True)
class Try:
    """One try of a task instance: the live row (``current``) or a row of its history."""

    task_id: str
    map_index: int
    try_number: int
    state: str | None
    start_date: dt.datetime | None
    end_date: dt.datetime | None
    updated_at: dt.datetime | None
    hostname: str | None
    current: bool

    @property
    def at(self) -> dt.datetime | None:
        """When its state was set, as well as Airflow tells it."""
        return self.end_date or self.updated_at or self.start_date


@dataclass(frozen=True)
class LogRow:
    """A row of Airflow's own ``log`` table."""

    event: str
    task_id: str | None
    map_index: int | None
    try_number: int | None
    at: dt.datetime | None
    owner: str | None
    extra: str | None


@dataclass(frozen=True)
class Task:
    """What the DAG version says of a task."""

    trigger_rule: str | None
    upstream: tuple[str, ...]


@dataclass
class Run:
    """One DAG run and everything the metadata database holds about its task states."""

    dag_id: str
    run_id: str
    state: str | None
    run_type: str | None
    queued_at: dt.datetime | None
    start_date: dt.datetime | None
    end_date: dt.datetime | None
    triggered_by: str | None
    triggering_user: str | None
    version_id: str | None
    tries: list[Try] = field(default_factory=list)
    log: list[LogRow] = field(default_factory=list)
    choices: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)


def _value(value: Any) -> Any:
    return getattr(value, "value", value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def read_runs(session: Any, runs: Iterable[tuple[str, str]]) -> list[Run]:
    """The DAG runs ``(dag_id, run_id)`` as the metadata database holds them (unknown ones are left out)."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import and_, or_, select

    wanted = sorted(set(runs))
    if not wanted:
        return []
    rows = session.execute(
        select(DagRun).where(or_(*(and_(DagRun.dag_id == d, DagRun.run_id == r) for d, r in wanted)))
    ).scalars()
    found = [_run(dag_run) for dag_run in rows]
    by_dag: dict[str, list[Run]] = {}
    for run in found:
        by_dag.setdefault(run.dag_id, []).append(run)
    for dag_id, dag_runs in by_dag.items():
        _fill(session, dag_id, dag_runs)
    return found


def read_dag_run(session: Any, dag_run: Any) -> Run:
    """One DAG run, read through ``session``, with its DAG's structure taken from ``dag_run.dag`` when loaded."""
    run = _run(dag_run)
    _fill(session, run.dag_id, [run], dag=getattr(dag_run, "dag", None))
    return run


def _run(dag_run: Any) -> Run:
    return Run(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        state=_value(dag_run.state),
        run_type=_value(dag_run.run_type),
        queued_at=dag_run.queued_at,
        start_date=dag_run.start_date,
        end_date=dag_run.end_date,
        triggered_by=_value(getattr(dag_run, "triggered_by", None)),
        triggering_user=getattr(dag_run, "triggering_user_name", None),
        version_id=_text(getattr(dag_run, "created_dag_version_id", None)),
    )


def _fill(session: Any, dag_id: str, runs: Sequence[Run], dag: Any = None) -> None:
    from airflow.models.log import Log
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    by_id = {run.run_id: run for run in runs}
    run_ids = list(by_id)
    for model, current in ((TaskInstance, True), (TaskInstanceHistory, False)):
        for row in session.execute(
            select(
                model.run_id,
                model.task_id,
                model.map_index,
                model.try_number,
                model.state,
                model.start_date,
                model.end_date,
                model.updated_at,
                model.hostname,
            ).where(model.dag_id == dag_id, model.run_id.in_(run_ids))
        ):
            by_id[row.run_id].tries.append(
                Try(
                    row.task_id,
                    int(row.map_index),
                    int(row.try_number or 0),
                    _value(row.state),
                    row.start_date,
                    row.end_date,
                    row.updated_at,
                    row.hostname or None,
                    current,
                )
            )
    for row in session.execute(
        select(Log.run_id, Log.event, Log.task_id, Log.map_index, Log.try_number, Log.dttm, Log.owner, Log.extra)
        .where(
            Log.dag_id == dag_id,
            Log.event.in_(STATE_LOG_EVENTS + CLEAR_LOG_EVENTS),
            Log.run_id.in_(run_ids) | Log.run_id.is_(None),
        )
        .order_by(Log.dttm)
    ):
        targets = [by_id[row.run_id]] if row.run_id in by_id else list(runs)
        for run in targets:
            run.log.append(
                LogRow(row.event, row.task_id, row.map_index, row.try_number, row.dttm, row.owner, row.extra)
            )
    for row in session.execute(
        select(XComModel.run_id, XComModel.task_id, XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.run_id.in_(run_ids), XComModel.key == SKIPMIXIN_KEY
        )
    ):
        value = XComModel.deserialize_value(row)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                continue
        if isinstance(value, dict):
            by_id[row.run_id].choices[row.task_id] = value
    for run in runs:
        run.tasks = _structure(session, dag_id, run.version_id, dag)


def _structure(session: Any, dag_id: str, version_id: str | None, dag: Any) -> dict[str, Task]:
    """Trigger rule and upstream tasks of every task of the DAG version (``{}`` if it cannot be read)."""
    if dag is None:
        from airflow.models.serialized_dag import SerializedDagModel
        from sqlalchemy import select

        row = None
        if version_id:
            import uuid

            version = SerializedDagModel.dag_version_id == uuid.UUID(version_id)
            row = session.scalar(select(SerializedDagModel).where(version).limit(1))
        if row is None:
            row = SerializedDagModel.get(dag_id, session=session)
        dag = None if row is None else row.dag
    if dag is None:
        return {}
    return {
        task_id: Task(_text(_value(getattr(task, "trigger_rule", None))), tuple(sorted(task.upstream_task_ids)))
        for task_id, task in dag.task_dict.items()
    }
