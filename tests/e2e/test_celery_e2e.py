"""The guarantees across machines: Airflow's CeleryExecutor with two workers, Redis and PostgreSQL, natively.

One cluster serves the module: the API server, scheduler, DAG processor and triggerer (the metadata database on
the session's PostgreSQL), Debian's ``redis-server`` as the broker, two Celery workers with ``AIRFLOW_HOME``\\s,
log folders and host names of their own (each records its name as the host of the tries it runs), and the
integrity store on a PostgreSQL server of its own. Runs are triggered over REST; each fault is checked
afterwards by the guarantees (the payments the service made, the ledger's fencing tokens, the trail and its
verification), not by logs:

- a worker SIGKILLed, with its pool and task processes, while a keyed payment is in flight;
- the same business key triggered four times at once, its tries spread over both workers;
- the broker SIGKILLed and restarted, losing the messages it held, while a batch of payments runs;
- the integrity store's PostgreSQL stopped as a crash would and started again while tasks run, under the
  ``fail`` policy (tries that cannot be audited fail and are retried) and the ``spool`` policy (tries run on, their
  events wait in each worker's spool and reach the trail in their order).
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.verify import verify
from airflow_integrity.store.ledger.entries import State
from airflow_integrity.store.ledger.ledger import IdempotencyLedger
from tests.e2e.conftest import E2EPostgres
from tests.e2e.harness import AirflowCluster, poll_until
from tests.e2e.redis_server import RedisServer
from tests.http_payments import PaymentsService, payments_service
from tests.operators.support import idempotency_events
from tests.pg import EmbeddedCluster, embedded_cluster

pytestmark = pytest.mark.e2e

WORKERS = ("worker-a", "worker-b")
DAGS = Path(__file__).parent / "dags"
PRELOAD_DAG = Path(__file__).parent / "dags_preload" / "preloaded_validation.py"


@dataclass
class Scaled:
    """The running topology and what the scenarios measured (printed at the end of the module)."""

    cluster: AirflowCluster
    redis: RedisServer
    service: PaymentsService
    store_uri: str
    store_server: EmbeddedCluster
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def store(self) -> IntegrityStore:
        return IntegrityStore(StoreLocation.from_url(self.store_uri))

    def spooled_lines(self) -> dict[str, int]:
        """Events waiting in each spool: the control plane's (scheduler, API server) and each worker's."""
        homes = {"control": self.cluster.home, **{w: self.cluster.worker_home(w) for w in WORKERS}}
        counts = {}
        for name, home in homes.items():
            spool = home / "integrity-spool" / "audit-spool.jsonl"
            counts[name] = len(spool.read_text().splitlines()) if spool.exists() else 0
        return counts

    def drain_spools(self) -> None:
        """``airflow integrity audit drain`` on the control plane and on each worker."""
        for worker in (None, *WORKERS):
            result = self.cluster.airflow_cli("integrity", "audit", "drain", worker=worker)
            assert result.returncode == 0, result.stdout + result.stderr

    def run_events(self, run_id: str) -> list[Any]:
        """The run's events in chain order, every pending one chained first."""
        store = self.store
        AuditLog(store).chain_pending()
        return [r for _, r in iter_records(store, run_id=run_id) if not isinstance(r, str)]

    def ran_tries(self, dag_id: str, run_id: str) -> dict[tuple[str, int], str]:
        """``(task_id, try_number) -> state`` of every try a worker took (Airflow recorded its host)."""
        return {
            (ti["task_id"], t["try_number"]): t["state"]
            for ti in self.cluster.task_instances(dag_id, run_id)
            for t in self.cluster.tries(dag_id, run_id, ti["task_id"])
            if t["hostname"]
        }

    def stop_store_while(self, ready: Any, down_seconds: float) -> float:
        """Once ``ready()`` is true, stop the store's PostgreSQL as a crash would, keep it down for
        ``down_seconds`` and start it again; return when it went down (monotonic)."""
        poll_until(ready, timeout=120, interval=0.1, describe=self.cluster.logs_tail)
        self.store_server.stop_server()
        down_at = time.monotonic()
        time.sleep(down_seconds)
        self.store_server.start_server()
        return down_at

    def worker_of(self, pid: int) -> str:
        """The worker whose session holds process ``pid``."""
        owners = [name for name in WORKERS if pid in self.cluster.worker_processes(name)]
        assert len(owners) == 1, (pid, owners)
        return owners[0]


@pytest.fixture(scope="module")
def scaled(e2e_pg: E2EPostgres, e2e_pycache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scaled]:
    root = tmp_path_factory.mktemp("celery")
    dags = root / "dags"
    dags.mkdir()
    for name in ("exactly_once_payment.py", "fanout_payments.py", "audited_steps.py"):
        shutil.copy(DAGS / name, dags)
    shutil.copy(PRELOAD_DAG, dags)
    with (
        embedded_cluster(root / "store-pg") as store_server,
        RedisServer(root / "redis") as redis,
        payments_service() as service,
    ):
        store_server.create_database("store")
        store_uri = store_server.uri("store")
        env = {
            "AIRFLOW_CONN_INTEGRITY_DEFAULT": store_uri,
            "AIRFLOW_CONN_PAYMENTS_API": service.url,
            "AIRFLOW__CORE__PARALLELISM": "16",
            # A try whose worker died is failed once its heartbeat is 15 s old (workers beat every 2 s).
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
            # A message the broker lost is sent again after 40 s queued (also the life of a try's token).
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "40",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "5",
        }
        cluster = AirflowCluster(
            home=root / "home",
            dags_folder=dags,
            metadata_db_uri=e2e_pg.create_database("airflow"),
            env=env,
            pycache_dir=e2e_pycache,
            celery_workers=WORKERS,
            broker_url=redis.url,
        )
        with cluster:
            cluster.wait_for_dag("exactly_once_payment", timeout=120)
            cluster.wait_for_dag("fanout_payments", timeout=120)
            cluster.wait_for_dag("audited_steps", timeout=120)
            cluster.wait_for_dag("preloaded_validation", timeout=120)
            topology = Scaled(cluster, redis, service, store_uri, store_server)
            yield topology
        assert cluster.surviving_processes() == []
    for name, outcome in topology.outcomes.items():
        print(f"{name}: {outcome}")


@pytest.mark.requirement("part11.11.10h")
def test_a_worker_killed_while_its_payment_is_in_flight_pays_once(scaled: Scaled) -> None:
    """The worker running the payment dies with its pool and task processes (SIGKILL) while the service holds
    the request; Airflow fails the try for its lost heartbeat and retries it on the other worker, which takes
    the key over (fencing token 2) and gets the payment already made."""
    cluster, service, key = scaled.cluster, scaled.service, "claim-8101"
    service.hold(key)
    run_id = cluster.trigger("exactly_once_payment", conf={"claim_id": "8101", "amount": "99.10"})
    held = service.wait_for_held(key, timeout=120)
    victim = scaled.worker_of(held["task_pid"])
    killed_at = time.monotonic()
    killed = cluster.kill_worker(victim)
    state = cluster.wait_for_run("exactly_once_payment", run_id, timeout=180)
    recovered_s = time.monotonic() - killed_at
    cluster.start_worker(victim)
    tries = cluster.tries("exactly_once_payment", run_id, "pay_claim")
    stats = service.stats()

    assert state == "success", cluster.logs_tail()
    assert held["task_pid"] in killed
    survivor = next(name for name in WORKERS if name != victim)
    assert [(t["try_number"], t["hostname"]) for t in tries] == [(1, victim), (2, survivor)], tries
    assert tries[0]["state"] in ("failed", "up_for_retry") and tries[1]["state"] == "success", tries
    # One payment: the retry sent the same key from the other machine and got the payment made for the first.
    assert stats["created_by_key"][key] == 1
    requests = [r for r in stats["requests"] if r["key"] == key]
    assert [(r["held"], r["status"]) for r in requests] == [(True, None), (False, 200)], requests
    with IdempotencyLedger(scaled.store, namespace="payments") as ledger:
        entry = ledger.get(key)
        assert entry is not None and entry.state is State.COMPLETED and entry.fencing_token == 2
        assert (entry.holder["try_number"], entry.holder["host"]) == (2, survivor), entry.holder
    # Claimed by try 1; try 2 took the key over once the dead try's lease had expired (waiting for it while it
    # was live) and completed it.
    events = [(e["event"], e["try_number"]) for e in idempotency_events(scaled.store_uri, key)]
    assert [e for e in events if e[0] != "conflict"] == [("claimed", 1), ("takeover", 2), ("completed", 2)], events
    assert {e for e in events if e[0] == "conflict"} <= {("conflict", 2)}, events
    assert verify(scaled.store).ok
    scaled.outcomes["worker killed mid-payment"] = {
        "killed": victim,
        "processes killed": len(killed),
        "retried on": survivor,
        "run done after kill (s)": round(recovered_s, 1),
        "payments": stats["created_by_key"][key],
        "fencing token": 2,
    }


def test_one_business_key_triggered_four_times_at_once_across_both_workers_pays_once(scaled: Scaled) -> None:
    """Four runs for one claim, triggered together: their tries run on both workers at once; one pays, the
    others wait for its lease and replay its result."""
    cluster, service, key = scaled.cluster, scaled.service, "claim-8202"
    conf = {"claim_id": "8202", "amount": "20.00"}
    started = time.monotonic()
    run_ids = [cluster.trigger("exactly_once_payment", conf=conf) for _ in range(4)]
    states = [cluster.wait_for_run("exactly_once_payment", run_id, timeout=180) for run_id in run_ids]
    elapsed = time.monotonic() - started
    tries = [t for run_id in run_ids for t in cluster.tries("exactly_once_payment", run_id, "pay_claim")]
    returned = [cluster.returned("exactly_once_payment", run_id, "pay_claim") for run_id in run_ids]
    stats = service.stats()

    assert states == ["success"] * 4, cluster.logs_tail()
    assert {t["hostname"] for t in tries} == set(WORKERS), tries
    assert stats["created_by_key"][key] == 1
    assert all(r == returned[0] for r in returned) and returned[0]["status_code"] == 201, returned
    outcomes = Counter(e["event"] for e in idempotency_events(scaled.store_uri, key))
    assert outcomes["claimed"] == 1 and outcomes["completed"] == 1, outcomes
    assert outcomes["replayed"] == 3, outcomes
    assert verify(scaled.store).ok
    scaled.outcomes["one key, four runs at once"] = {
        "tries by worker": dict(Counter(t["hostname"] for t in tries)),
        "payments": stats["created_by_key"][key],
        "replays": outcomes["replayed"],
        "seconds": round(elapsed, 1),
    }


def _validation_run(scaled: Scaled) -> tuple[dict[str, bool], float]:
    """Run ``preloaded_validation``: what its first task's process had loaded, and the validating task's
    duration (s) as Airflow measured it."""
    cluster = scaled.cluster
    run_id = cluster.trigger("preloaded_validation")
    assert cluster.wait_for_run("preloaded_validation", run_id, timeout=180) == "success", cluster.logs_tail()
    loaded = cluster.returned("preloaded_validation", run_id, "loaded_before_the_task")
    validate = next(
        ti for ti in cluster.task_instances("preloaded_validation", run_id) if ti["task_id"] == "validate_claims"
    )
    return loaded, float(validate["duration"])


def test_a_celery_workers_task_processes_start_with_great_expectations_loaded(scaled: Scaled) -> None:
    """With the package's Celery configuration each worker loads GX once, before its pool forks: a task process
    finds it loaded, and a validating task does not import it. Without the preload (``[integrity]
    preload_validation`` off) every validating task imports GX itself."""
    cluster = scaled.cluster
    preloaded = [_validation_run(scaled) for _ in range(3)]
    for worker in WORKERS:
        assert "Great Expectations in" in cluster.component_log(f"worker-{worker}")
        cluster.kill_worker(worker)
        cluster.start_worker(worker, env={"AIRFLOW__INTEGRITY__PRELOAD_VALIDATION": "False"})
    cold = [_validation_run(scaled) for _ in range(3)]
    for worker in WORKERS:
        cluster.kill_worker(worker)
        cluster.start_worker(worker, env={"AIRFLOW__INTEGRITY__PRELOAD_VALIDATION": "True"})

    assert all(loaded == dict.fromkeys(loaded, True) for loaded, _ in preloaded), preloaded
    assert all(not loaded["great_expectations"] for loaded, _ in cold), cold
    with_preload = sorted(seconds for _, seconds in preloaded)[1]
    without = sorted(seconds for _, seconds in cold)[1]
    assert with_preload < without, (preloaded, cold)
    scaled.outcomes["validating task on a Celery worker (median of 3, s)"] = {
        "GX preloaded by the worker": round(with_preload, 2),
        "GX imported by the task": round(without, 2),
    }


def test_the_broker_restarted_mid_batch_loses_no_payment_and_pays_none_twice(scaled: Scaled) -> None:
    """Redis is SIGKILLed (without persistence: the messages it held are gone) while a batch of six payments
    runs, and started again 3 s later. The workers reconnect; the scheduler sends again what was lost; every
    claim is paid once and the trail has every try."""
    cluster, service, redis = scaled.cluster, scaled.service, scaled.redis
    batch = "r1"
    keys = [f"claim-{batch}-{n}" for n in range(1, 7)]
    before = service.stats()["created_by_key"]
    assert not any(key in before for key in keys)
    run_id = cluster.trigger("fanout_payments", conf={"batch": batch})
    poll_until(
        lambda: True if any(k in service.stats()["created_by_key"] for k in keys) else None,
        timeout=120,
        interval=0.1,
        describe=lambda: f"no payment of batch {batch} started: {cluster.logs_tail()}",
    )
    redis.kill()
    down_at = time.monotonic()
    paid_while_up = sum(1 for k in keys if k in service.stats()["created_by_key"])
    time.sleep(3)
    redis.start()
    state = cluster.wait_for_run("fanout_payments", run_id, timeout=240)
    recovered_s = time.monotonic() - down_at
    stats = service.stats()
    instances = cluster.task_instances("fanout_payments", run_id)

    assert state == "success", cluster.logs_tail()
    assert {k: stats["created_by_key"].get(k) for k in keys} == dict.fromkeys(keys, 1)
    assert {ti["hostname"] for ti in instances} <= set(WORKERS)
    # Every try a worker ran is in the trail: one task_instance.running per try, and nothing more.
    running = Counter(
        (r.task_id, r.try_number) for r in scaled.run_events(run_id) if r.event_type == "task_instance.running"
    )
    tried = set(scaled.ran_tries("fanout_payments", run_id))
    assert set(running) == tried and set(running.values()) == {1}, (running, tried)
    assert verify(scaled.store).ok
    scaled.outcomes["broker restarted mid-batch"] = {
        "paid before the kill": paid_while_up,
        "payments": sum(stats["created_by_key"][k] for k in keys),
        "tries": dict(Counter(t for _, t in tried)),
        "run done after kill (s)": round(recovered_s, 1),
    }


def test_the_store_down_mid_batch_under_fail_fails_tries_cleanly_and_pays_once(scaled: Scaled) -> None:
    """Policy ``fail`` (the default): a try that cannot claim its key or record that it runs fails and is
    retried once the store is back; the end of a try that already happened is kept (spooled) whatever the policy.
    Every claim is paid once, every try that ran has its end in the trail, the chain verifies."""
    cluster, service = scaled.cluster, scaled.service
    keys = [f"claim-s1-{n}" for n in range(1, 7)]
    run_id = cluster.trigger("fanout_payments", conf={"batch": "s1"})
    down_at = scaled.stop_store_while(
        lambda: True if any(k in service.stats()["created_by_key"] for k in keys) else None, down_seconds=8
    )
    state = cluster.wait_for_run("fanout_payments", run_id, timeout=300)
    recovered_s = time.monotonic() - down_at
    waiting = scaled.spooled_lines()
    scaled.drain_spools()

    assert state == "success", cluster.logs_tail()
    assert {k: service.stats()["created_by_key"].get(k) for k in keys} == dict.fromkeys(keys, 1)
    assert scaled.spooled_lines() == dict.fromkeys(("control", *WORKERS), 0)
    tries = scaled.ran_tries("fanout_payments", run_id)
    events = scaled.run_events(run_id)
    ends = Counter(
        (r.task_id, r.try_number)
        for r in events
        if r.event_type in ("task_instance.success", "task_instance.up_for_retry", "task_instance.failed")
    )
    assert ends == Counter(tries.keys()), (ends, tries)
    failed = {t for t, state in tries.items() if state != "success"}
    assert failed, f"no try failed: the store was down for nothing ({tries})"
    for task_id, try_number in (t for t, state in tries.items() if state == "success"):
        own = [r.event_type for r in events if (r.task_id, r.try_number) == (task_id, try_number)]
        assert own.index("task_instance.running") < own.index("task_instance.success"), own
    assert verify(scaled.store).ok
    scaled.outcomes["store down 8 s mid-batch, policy fail"] = {
        "tries": len(tries),
        "failed and retried": len(failed),
        "payments": len(keys),
        "spooled (kept) before the drain": waiting,
        "run done after the store went down (s)": round(recovered_s, 1),
    }


@pytest.mark.requirement("alcoa.enduring", "annex11.7")
def test_the_store_down_under_spool_runs_on_and_the_spools_drain_in_order(scaled: Scaled) -> None:
    """Policy ``spool`` on the workers: the steps run through the outage on their first try; what they could not
    record waits in each worker's spool and reaches the trail, in each spool's order, with nothing lost."""
    cluster = scaled.cluster
    for worker in WORKERS:
        cluster.kill_worker(worker)
        cluster.start_worker(worker, env={"AIRFLOW__INTEGRITY__AUDIT_ON_STORE_ERROR": "spool"})
    run_id = cluster.trigger("audited_steps", conf={"seconds": 6})

    def four_running() -> bool | None:
        states = [ti["state"] for ti in cluster.task_instances("audited_steps", run_id)]
        return True if states.count("running") >= 4 else None

    down_at = scaled.stop_store_while(four_running, down_seconds=10)
    state = cluster.wait_for_run("audited_steps", run_id, timeout=240)
    recovered_s = time.monotonic() - down_at
    waiting = scaled.spooled_lines()
    scaled.drain_spools()

    assert state == "success", cluster.logs_tail()
    tries = scaled.ran_tries("audited_steps", run_id)
    assert tries == {(f"step_{n}", 1): "success" for n in range(1, 7)}, tries
    assert scaled.spooled_lines() == dict.fromkeys(("control", *WORKERS), 0)
    events = scaled.run_events(run_id)
    for task_id, try_number in tries:
        own = [r.event_type for r in events if (r.task_id, r.try_number) == (task_id, try_number)]
        assert own.count("task_instance.running") == 1 and own.count("task_instance.success") == 1, own
        assert own.index("task_instance.running") < own.index("task_instance.success"), own
    spooled = [r for r in events if "_spool" in r.details]
    assert spooled, "no event of the run was spooled: the store was down for nothing"
    # A spool replays in the order its events were written: the events one process wrote (a task's, the
    # scheduler's) reach the trail in the order it attempted them. (Across the concurrent task processes of one
    # worker, the order is the spool file's, which their attempt times do not tell.)
    hosts = {(ti["task_id"], 1): ti["hostname"] for ti in cluster.task_instances("audited_steps", run_id)}

    def spool_of(record: Any) -> str:
        worker_event = record.actor.startswith("worker@") and record.task_id is not None
        return hosts[(record.task_id, record.try_number)] if worker_event else "control"

    writers = {(spool_of(r), r.details["_spool"]["pid"]) for r in spooled}
    for writer in writers:
        times = [
            r.details["_spool"]["occurred_at"]
            for r in spooled
            if (spool_of(r), r.details["_spool"]["pid"]) == writer
        ]
        assert times == sorted(times), (writer, times)
    assert verify(scaled.store).ok
    scaled.outcomes["store down 10 s mid-run, policy spool"] = {
        "tries": len(tries),
        "events of the run": len(events),
        "of them spooled": len(spooled),
        "spooling processes": len(writers),
        "waiting in spools when the run ended": waiting,
        "run done after the store went down (s)": round(recovered_s, 1),
    }
