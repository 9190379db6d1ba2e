"""An exactly-once task that defers while another holder has the key (see test_idempotent_deferral.py)."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_integrity.operators.idempotent import IdempotentPythonOperator


def settle(effects: str, idempotency=None) -> dict:
    with open(effects, "a", encoding="utf-8") as fh:
        fh.write(f"{idempotency['key']} token={idempotency['fencing_token']}\n")
    return {"token": idempotency["fencing_token"], "takeover": idempotency["takeover"]}


@dag(
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"effects": ""},
    tags=["test"],
)
def idempotent_deferral():
    IdempotentPythonOperator(
        task_id="settle",
        key="settle-1",
        namespace="tests",
        python_callable=settle,
        op_kwargs={"effects": "{{ params.effects }}"},
        fingerprint_inputs={"claim": 1},
        deferrable=True,
        poll_interval=0.2,
    )


idempotent_deferral()
