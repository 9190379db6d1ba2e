"""Answering an approval (Airflow's human-in-the-loop operators) over REST, as a person would."""

from __future__ import annotations

from typing import Any

from tests.e2e.harness import AirflowCluster, poll_until


def wait_for_state(cluster: AirflowCluster, dag_id: str, run_id: str, task_id: str, states: set[str]) -> str:
    def probe() -> str | None:
        state = {ti["task_id"]: ti["state"] for ti in cluster.task_instances(dag_id, run_id)}.get(task_id)
        return state if state in states else None

    return poll_until(
        probe, timeout=120, describe=lambda: f"{task_id} never reached {states}\n{cluster.logs_tail()}"
    )


def wait_for_parking_reported(cluster: AirflowCluster, dag_id: str, run_id: str, task_id: str) -> None:
    """Wait until the scheduler has handled the executor's "success" for the try that parked the task.

    Airflow 3.3 fails a task whose answer re-queues it before that event is handled: the late "success" of
    the parking process meets a queued try of the same number ("state mismatch", marked failed). A person
    answering takes longer than that; a test must wait for the handling, as no fixed pause is long enough on
    a loaded machine. The scheduler logs "TaskInstance Finished" with the state it read, under a row lock,
    once it has the event in hand.
    """
    handled = f"TaskInstance Finished: dag_id={dag_id}, task_id={task_id}, run_id={run_id},"
    poll_until(
        lambda: handled in cluster.component_log("scheduler") or None,
        timeout=120,
        describe=lambda: f"the scheduler never handled the end of {task_id}'s parking try\n{cluster.logs_tail()}",
    )


def answer_approval(
    cluster: AirflowCluster, dag_id: str, run_id: str, task_id: str, chosen: list[str]
) -> dict[str, Any]:
    """Choose ``chosen`` for the task's question once it waits for a person; returns Airflow's answer."""
    wait_for_state(cluster, dag_id, run_id, task_id, {"deferred", "awaiting_input"})
    wait_for_parking_reported(cluster, dag_id, run_id, task_id)
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
    return dict(cluster.api("PATCH", path, json={"chosen_options": chosen, "params_input": {}}))
