"""Code run in the child processes of ``test_compensation_processes``: each child undoes the effects of one DAG
run through ``airflow_integrity.hooks.compensation``, as a compensating task does. Holds no tests."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from airflow_integrity.hooks.compensation import compensate, effects_of_run
from airflow_integrity.hooks.idempotency import IdempotencyClaim, IdempotencyGuard
from airflow_integrity.store.ledger.codec import inputs_digest

NAMESPACE = "compensations"
DAG_ID, RUN_ID = "order_to_cash", "manual__1"


def make_effect(key: str, task_id: str) -> None:
    """Complete ``key`` as a task of the run would (on the ``integrity_default`` store): the effect a compensation
    undoes."""
    IdempotencyGuard(
        key=key,
        fingerprint=inputs_digest({"key": key}),
        namespace=NAMESPACE,
        holder={"dag_id": DAG_ID, "run_id": RUN_ID, "task_id": task_id, "map_index": -1, "try_number": 1},
    ).run(lambda claim: {"posted": key})


def _undo_all(url: str, undone: str, role: str, lease_seconds: float, pause: float, started: str | None) -> list:
    os.environ["AIRFLOW_CONN_INTEGRITY_DEFAULT"] = url

    def undo(result: Any, claim: IdempotencyClaim) -> dict[str, Any]:
        if started is not None:
            Path(started).write_text(str(claim.fencing_token))
        time.sleep(pause)
        with open(undone, "a", encoding="utf-8") as fh:
            fh.write(f"{result['posted']} token={claim.fencing_token} pid={os.getpid()}\n")
        return {"undone": result["posted"], "by": os.getpid()}

    holder = {"dag_id": DAG_ID, "run_id": RUN_ID, "task_id": "compensate", "role": role}
    return [
        compensate(effect, undo, holder=holder, lease_seconds=lease_seconds).status.value
        for effect in effects_of_run(DAG_ID, RUN_ID)
    ]


def racer(url: str, undone: str, barrier: Any, out: Any) -> None:
    """Start with the others at the barrier, then undo every effect of the run (0.3 s each) or replay."""
    barrier.wait()
    out.put({"pid": os.getpid(), "statuses": _undo_all(url, undone, "racer", 30.0, 0.3, None)})


def doomed(url: str, undone: str, started: str) -> None:
    """Begin undoing with a short lease and stay mid-undo (before its effect) until killed."""
    _undo_all(url, undone, "doomed", 1.5, 600.0, started)


def survivor(url: str, undone: str, out: Any) -> None:
    """Undo every effect of the run after the doomed one died."""
    out.put({"pid": os.getpid(), "statuses": _undo_all(url, undone, "survivor", 30.0, 0.0, None)})
