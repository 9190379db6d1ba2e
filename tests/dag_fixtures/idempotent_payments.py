"""Exactly-once tasks, TaskFlow and classic: each appends one line per effect to the file in ``params.effects``.

tests/decorators/test_idempotent_dag.py runs it several times with the same claim id and counts the lines.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from airflow_integrity.operators.idempotent import IdempotentPythonOperator, current_claim
from airflow_integrity.sensors.idempotency import IdempotencyKeySensor


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def pay_classic(claim_id: str, amount: str, effects: str) -> dict:
    claim = current_claim()
    assert claim is not None
    _append(effects, f"classic {claim.key} {claim.fencing_token}")
    return {"paid": claim_id, "amount": amount, "token": claim.fencing_token, "by": "classic"}


@dag(
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"claim_id": "1", "amount": "10.00", "effects": ""},
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
    tags=["test"],
)
def idempotent_payments():
    @task.idempotent(key="deco-{{ params.claim_id }}", namespace="tests", lease_seconds=30)
    def pay(claim_id: str, amount: str, effects: str, idempotency=None) -> dict:
        _append(effects, f"deco {idempotency['key']} {idempotency['fencing_token']}")
        return {"paid": claim_id, "amount": amount, "token": idempotency["fencing_token"], "by": "deco"}

    paid = pay("{{ params.claim_id }}", "{{ params.amount }}", "{{ params.effects }}")
    classic = IdempotentPythonOperator(
        task_id="pay_classic",
        key="classic-{{ params.claim_id }}",
        namespace="tests",
        python_callable=pay_classic,
        op_kwargs={
            "claim_id": "{{ params.claim_id }}",
            "amount": "{{ params.amount }}",
            "effects": "{{ params.effects }}",
        },
        # The effects file is where the test looks, not part of what defines the payment.
        fingerprint_inputs={"claim_id": "{{ params.claim_id }}", "amount": "{{ params.amount }}"},
    )
    # Downstream of an exactly-once effect: one sensor deferred to the (inline) triggerer, one poking.
    sensed = IdempotencyKeySensor(
        task_id="wait_deco",
        key="deco-{{ params.claim_id }}",
        namespace="tests",
        deferrable=True,
        poll_interval=0.2,
    )
    poked = IdempotencyKeySensor(
        task_id="wait_classic", key="classic-{{ params.claim_id }}", namespace="tests", poke_interval=0.2
    )
    paid >> sensed
    classic >> poked


idempotent_payments()
