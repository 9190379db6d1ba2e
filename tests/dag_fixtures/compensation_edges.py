"""Compensation at its edges. tests/operators/test_compensation_edges.py runs them.

- ``compensation_after_setup``: a setup task (``prepare``) that fails when ``params.fail_setup``, beside a keyed
  effect that does not depend on it; the compensation still runs and undoes the effect.
- ``compensation_undeclared``: two keyed effects, one declaring no undo; a failing step: the declared one is
  undone, the other reported, and the compensating task fails for a person.

Each effect appends a line to the file ``params.log``; each undo too.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_integrity.operators.compensation import compensation
from airflow_integrity.operators.idempotent import IdempotentPythonOperator


def _did(what: str, params: dict[str, Any] | None = None, **_: Any) -> str:
    assert params is not None
    with open(params["log"], "a", encoding="utf-8") as fh:
        fh.write(f"did {what}\n")
    return what


def _undo(result: str, params: dict[str, Any] | None = None) -> str:
    assert params is not None
    with open(params["log"], "a", encoding="utf-8") as fh:
        fh.write(f"undid {result}\n")
    return result


def _effect(what: str, undo: Any) -> IdempotentPythonOperator:
    return IdempotentPythonOperator(
        task_id=f"do_{what}",
        python_callable=_did,
        op_args=[what],
        key=f"{what}-{{{{ params.case }}}}",
        namespace="edges",
        compensate=undo,
    )


ARGS: dict[str, Any] = {
    "schedule": None,
    "start_date": pendulum.datetime(2024, 1, 1, tz="UTC"),
    "catchup": False,
    "default_args": {"retries": 0},
    "tags": ["test"],
}


@dag(params={"case": "1", "log": "/dev/null", "fail_setup": True}, **ARGS)
def compensation_after_setup():
    @task
    def prepare(params: dict[str, Any] | None = None) -> None:
        assert params is not None
        if params["fail_setup"]:
            raise RuntimeError("the cluster could not be created")

    @task
    def work() -> None:
        pass

    setup = prepare().as_setup()
    setup >> work()
    _effect("pay", _undo)
    compensation()


@dag(params={"case": "1", "log": "/dev/null"}, **ARGS)
def compensation_undeclared():
    @task
    def book() -> None:
        raise RuntimeError("booking failed")

    _effect("reserve", _undo) >> _effect("notify", None) >> book()
    compensation()


compensation_after_setup()
compensation_undeclared()
