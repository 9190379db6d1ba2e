"""Compensation on a real cluster, on a SQLite and a PostgreSQL store: an order fails after two payments, and
its compensating task refunds them, newest first, once each, through two faults.

- **Killed mid-refund**: the payments service makes the refund of ``balance-<order>`` and does not answer; the
  test SIGKILLs the compensating try. Airflow retries it; the retry takes the refund's compensation key over
  once the dead try's lease ran out (fencing token 2) and sends the refund again under the same key; the
  service answers with the refund it already made.
- **A concurrent duplicate**: the compensating try's supervisor is frozen (SIGSTOP) while the try itself keeps
  running, with its refund request held. Airflow declares the try dead for its missing heartbeats and starts a
  retry while the first try is still alive: two attempts of one compensation at once. The retry finds the
  refund's key held by a live lease and waits; once the first try's refund is answered it completes, and the
  retry replays it. Each refund request is sent once in all.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.verify import verify
from airflow_integrity.store.ledger.entries import State
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from tests.e2e.conftest import ClusterFactory, E2EPostgres
from tests.e2e.harness import AirflowCluster, poll_until
from tests.http_payments import PaymentsService, payments_service

DAG_ID = "compensated_order"
PROCESS_TASKS = {"pay_deposit": "success", "pay_balance": "success", "book": "failed"}


@dataclass
class Shop:
    cluster: AirflowCluster
    service: PaymentsService
    store: IntegrityStore

    def fail_order(self, order: str) -> str:
        """Trigger an order whose booking fails; return its run id once its first refund is held."""
        self.service.hold(f"balance-{order}/compensation")
        return self.cluster.trigger(DAG_ID, conf={"order_id": order, "fail": True})

    def trail(self, run_id: str) -> list[tuple[str, str | None, int | None, Any]]:
        """``(event, effect or key, try, fencing token)`` of the run's compensation and idempotency events."""
        AuditLog(self.store).chain_pending()
        return [
            (
                r.event_type,
                (r.details.get("effect") or {}).get("key") or r.details.get("key"),
                r.try_number,
                r.details.get("fencing_token"),
            )
            for _, r in iter_records(self.store, run_id=run_id)
            if not isinstance(r, str)
            and r.task_id == "compensate"
            and r.event_type.split(".")[0] != "task_instance"
        ]

    def compensations(self, order: str) -> dict[str, tuple[State, int]]:
        with IdempotencyLedger(self.store, namespace="orders") as ledger:
            entries = {part: ledger.get(f"{part}-{order}/compensation") for part in ("balance", "deposit")}
        return {part: (e.state, e.fencing_token) for part, e in entries.items() if e is not None}

    def refund_requests(self, order: str) -> list[tuple[str, int | None, bool, int | None]]:
        """``(part, sending pid, held, status)`` of every refund request of the order, in arrival order."""
        return [
            (r["key"].split("-")[0], r["task_pid"], r["held"], r["status"])
            for r in self.service.stats()["requests"]
            if r["path"] == "/refunds" and r["key"].startswith(("balance-" + order, "deposit-" + order))
        ]

    def refunded(self, order: str) -> list[str]:
        """The order's payments in the order they were refunded."""
        stats = self.service.stats()
        mine = {stats["payment_of_key"][f"{part}-{order}"]: part for part in ("balance", "deposit")}
        return [mine[payment] for payment in stats["refunded"] if payment in mine]


@pytest.fixture(params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, airflow_cluster_factory: ClusterFactory, e2e_pg: E2EPostgres, tmp_path: Path
) -> Iterator[Shop]:
    store_uri = (
        e2e_pg.create_database("store") if request.param == "postgresql" else f"sqlite:///{tmp_path / 'store.db'}"
    )
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(Path(__file__).parent / "dags" / f"{DAG_ID}.py", dags)
    with payments_service() as service:
        env = {
            "AIRFLOW_CONN_INTEGRITY_DEFAULT": store_uri,
            "AIRFLOW_CONN_PAYMENTS_API": service.url,
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        }
        cluster = airflow_cluster_factory(dags, env=env)
        store = IntegrityStore(StoreLocation.from_url(store_uri))
        try:
            with cluster:
                cluster.wait_for_dag(DAG_ID, timeout=120)
                yield Shop(cluster, service, store)
            assert cluster.surviving_processes() == []
            result = verify(store)
            assert result.ok, result.summary()
        finally:
            store.engine.dispose()


def _states(shop: Shop, run_id: str) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in shop.cluster.task_instances(DAG_ID, run_id)}


@pytest.mark.e2e
def test_compensation_refunds_each_payment_once_newest_first_through_a_kill_and_a_duplicate(shop: Shop) -> None:
    cluster, service = shop.cluster, shop.service

    # -- killed mid-refund ------------------------------------------------------------------------------------
    killed_run = shop.fail_order("k1")
    held = service.wait_for_held("balance-k1/compensation", timeout=180)
    cluster.kill_process(held["task_pid"])
    assert cluster.wait_for_run(DAG_ID, killed_run, timeout=240) == "failed", cluster.logs_tail()
    assert _states(shop, killed_run) == {**PROCESS_TASKS, "compensate": "success"}
    tries = [(t["try_number"], t["state"]) for t in cluster.tries(DAG_ID, killed_run, "compensate")]
    assert tries == [(1, "failed"), (2, "success")] or tries == [(1, "up_for_retry"), (2, "success")], tries

    assert shop.refunded("k1") == ["balance", "deposit"]
    requests = shop.refund_requests("k1")
    assert requests[0] == ("balance", held["task_pid"], True, None)  # killed before it heard the answer
    assert [(part, status) for part, _, _, status in requests[1:]] == [("balance", 200), ("deposit", 201)]
    assert shop.compensations("k1") == {"balance": (State.COMPLETED, 2), "deposit": (State.COMPLETED, 1)}
    assert [e for e in shop.trail(killed_run) if e[0].startswith("compensation.")] == [
        ("compensation.started", "balance-k1", 1, 1),
        ("compensation.started", "balance-k1", 2, 2),
        ("compensation.completed", "balance-k1", 2, 2),
        ("compensation.started", "deposit-k1", 2, 1),
        ("compensation.completed", "deposit-k1", 2, 1),
    ]

    # -- a concurrent duplicate: the first try declared dead while it still runs --------------------------------
    zombie_run = shop.fail_order("z1")
    held = service.wait_for_held("balance-z1/compensation", timeout=180)
    supervisor = _parent_of(held["task_pid"])
    os.kill(supervisor, signal.SIGSTOP)
    try:
        poll_until(
            lambda: ("idempotency.conflict", "balance-z1/compensation", 2, 1) in shop.trail(zombie_run) or None,
            timeout=120,
            interval=0.5,
            describe=lambda: f"the retry never met the live first try: {shop.trail(zombie_run)}",
        )
        assert service.release("balance-z1/compensation")
        assert cluster.wait_for_run(DAG_ID, zombie_run, timeout=240) == "failed", cluster.logs_tail()
    finally:
        os.kill(supervisor, signal.SIGCONT)
    assert _states(shop, zombie_run) == {**PROCESS_TASKS, "compensate": "success"}

    assert shop.refunded("z1") == ["balance", "deposit"]
    requests = shop.refund_requests("z1")
    assert [part for part, *_ in requests] == ["balance", "deposit"], requests  # one request each, in all
    assert requests[0][1:] == (held["task_pid"], True, 201)
    assert shop.compensations("z1") == {"balance": (State.COMPLETED, 1), "deposit": (State.COMPLETED, 1)}
    events = [e for e in shop.trail(zombie_run) if e[0] != "idempotency.conflict"]
    assert ("compensation.completed", "balance-z1", 1, 1) in events
    assert ("idempotency.replayed", "balance-z1/compensation", 2, 1) in events
    assert [e[0] for e in events].count("compensation.started") == 2, events  # one per effect


def _parent_of(pid: int) -> int:
    """The parent of a process: a task's supervisor."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])
