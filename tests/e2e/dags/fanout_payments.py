"""A batch of claim payments that a scale-out test spreads over several Celery workers.

``pay_<n>`` posts claim ``<batch>-<n>`` to the ``payments_api`` connection under the key ``claim-<batch>-<n>``;
the six tasks run in parallel, more than two workers' four task slots. Each task retries up to four times: a try
that failed while the broker or the integrity store was down runs again under the same key, 5 s later: four
retries outlast the 8 s the store's database is down plus its restart. The 30 s lease outlasts it too: a payment
made just before the outage keeps retrying its completion until the store is back. (With a 10 s lease CI once saw
a completion given up, the key left held for a person and the run failed: the product's answer to a longer
outage, not the one this batch is about.)
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from airflow_integrity.operators.http import IdempotentHttpOperator

PAYMENTS = 6


@dag(
    dag_id="fanout_payments",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"batch": Param("b1", type="string", description="The batch the claims belong to.")},
    tags=["test"],
)
def fanout_payments() -> None:
    for n in range(1, PAYMENTS + 1):
        IdempotentHttpOperator(
            task_id=f"pay_{n}",
            http_conn_id="payments_api",
            endpoint="/payments",
            method="POST",
            headers={"Content-Type": "application/json"},
            data=f'{{{{ {{"claim_id": params.batch ~ "-{n}", "amount": "10.00"}} | tojson }}}}',
            key=f"claim-{{{{ params.batch }}}}-{n}",
            namespace="payments",
            lease_seconds=30,
            retries=4,
            retry_delay=timedelta(seconds=5),
        )


fanout_payments()
