"""Answering an approval (Airflow's human-in-the-loop operators) over REST, as a client would: the moment it asks.

No pause before the answer: the plugin's API server holds an answer that comes within ``[integrity]
approval_settle_seconds`` of the question, so that Airflow does not fail the resumed task on the late end of the
process that parked it (``docs/airflow-hitl-state-mismatch.md``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.harness import AirflowCluster, poll_until

WAITING = "awaiting_input"


def answer_path(dag_id: str, run_id: str, task_id: str) -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"


def wait_for_state(cluster: AirflowCluster, dag_id: str, run_id: str, task_id: str, states: set[str]) -> str:
    def probe() -> str | None:
        state = {ti["task_id"]: ti["state"] for ti in cluster.task_instances(dag_id, run_id)}.get(task_id)
        return state if state in states else None

    return poll_until(
        probe, timeout=120, describe=lambda: f"{task_id} never reached {states}\n{cluster.logs_tail()}"
    )


def answer_approval(
    cluster: AirflowCluster, dag_id: str, run_id: str, task_id: str, chosen: list[str]
) -> dict[str, Any]:
    """Choose ``chosen`` for the task's question as soon as it waits for a person; returns Airflow's answer."""
    wait_for_state(cluster, dag_id, run_id, task_id, {"deferred", WAITING})
    body = {"chosen_options": chosen, "params_input": {}}
    return dict(cluster.api("PATCH", answer_path(dag_id, run_id, task_id), json=body))


@dataclass
class Answers:
    """What :func:`approve_each_as_asked` saw: per task, the seconds its answer call took."""

    seconds: dict[str, float] = field(default_factory=dict)
    not_asked: set[str] = field(default_factory=set)  # ended before they asked (failed early)


def approve_each_as_asked(cluster: AirflowCluster, dag_id: str, run_id: str, task_ids: set[str]) -> Answers:
    """Approve each of ``task_ids`` within 0.1 s of it waiting, each answer in a thread of its own."""
    answers = Answers()
    seen: set[str] = set()
    threads: list[threading.Thread] = []

    def approve(task_id: str) -> None:
        started = time.monotonic()
        body = {"chosen_options": ["Approve"], "params_input": {}}
        cluster.api("PATCH", answer_path(dag_id, run_id, task_id), json=body)
        answers.seconds[task_id] = time.monotonic() - started

    deadline = time.monotonic() + 300
    while seen != task_ids and time.monotonic() < deadline:
        for ti in cluster.task_instances(dag_id, run_id):
            task_id = ti["task_id"]
            if task_id not in task_ids or task_id in seen:
                continue
            if ti["state"] == WAITING:
                seen.add(task_id)
                thread = threading.Thread(target=approve, args=(task_id,))
                thread.start()
                threads.append(thread)
            elif ti["state"] in ("failed", "up_for_retry", "success", "upstream_failed"):
                seen.add(task_id)
                answers.not_asked.add(task_id)
        time.sleep(0.1)
    for thread in threads:
        thread.join(timeout=120)
    return answers


def state_mismatches(cluster: AirflowCluster, dag_id: str, run_id: str) -> list[str]:
    """The tasks of the run that Airflow failed on a "state mismatch" (its event log)."""
    query = {"dag_id": dag_id, "event": "state mismatch", "limit": 100}
    entries = cluster.api("GET", "/api/v2/eventLogs", params=query)["event_logs"]
    return sorted(entry["task_id"] for entry in entries if entry.get("run_id") == run_id)
