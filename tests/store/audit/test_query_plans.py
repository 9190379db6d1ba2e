"""Every filter of the trail's pages is served by an index on PostgreSQL: the plan PostgreSQL chooses for each
reads an index of revision a4 (or the primary key) and never scans the events table.

The trail here has 20,000 events over 40 DAGs, 400 runs, 2,000 business keys, 8 event types and 5 actors, and
statistics (ANALYZE), so that the planner chooses as it would on a store in use.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore, StoreLocation, connections
from airflow_integrity.store.audit import query
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import AuditEvent
from tests.pg import terminate_other_sessions
from tests.statements import sent_statements

pytestmark = pytest.mark.integration
EVENTS = 20_000


@pytest.fixture(scope="module")
def big_trail(pg_server) -> IntegrityStore:
    name = "t_query_plans"
    pg_server.create_database(name)
    store = IntegrityStore(StoreLocation.from_url(pg_server.uri(name), source="test"))
    store.migrate()
    log = AuditLog(store)
    for start in range(0, EVENTS, 1000):
        log.record_many(
            [
                AuditEvent(
                    event_type=f"type.{n % 8}",
                    actor=f"person-{n % 5}",
                    dag_id=f"dag_{n % 40}",
                    run_id=f"run_{n % 400}",
                    task_id=f"task_{n % 20}",
                    business_key=f"claim-{n % 2000}" if n % 3 else None,
                    details={"n": n},
                )
                for n in range(start, start + 1000)
            ]
        )
    log.chain_pending()
    with store.begin() as conn:
        conn.execute(text("ANALYZE integrity_audit_event"))
    yield store
    store.engine.dispose()
    pg_server.drop_database(name)


FILTERS = {
    "newest": query.EventFilter(),
    "dag": query.EventFilter(dag_id="dag_7"),
    "run": query.EventFilter(dag_id="dag_7", run_id="run_7"),
    "task": query.EventFilter(task_id="task_3"),
    "business key": query.EventFilter(business_key="claim-41"),
    "event type": query.EventFilter(event_type="type.3"),
    "actor": query.EventFilter(actor="person-2"),
    "time range": query.EventFilter(since="2000-01-01", until="2000-01-02"),
    "story": query.EventFilter(business_key="claim-41", story=True),
    "readable DAGs": query.EventFilter(readable_dags=frozenset({"dag_1", "dag_2"}), without_dag=False),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_each_filter_reads_an_index(big_trail: IntegrityStore, name: str) -> None:
    statement, params = query.page_query("postgresql", FILTERS[name], before=EVENTS - 100, limit=50)
    with big_trail.read() as conn:
        sql = str(statement.bindparams(**params).compile(conn, compile_kwargs={"literal_binds": True}))
        plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}").scalar_one()
    nodes = _nodes(plan[0]["Plan"] if isinstance(plan, list) else json.loads(plan)[0]["Plan"])
    scans = [(node["Node Type"], node.get("Relation Name"), node.get("Index Name")) for node in nodes]
    assert not [s for s in scans if s[0] == "Seq Scan" and s[1] == "integrity_audit_event"], scans
    assert any(s[2] and s[2].startswith(("ix_integrity_audit_event", "integrity_audit_event_pkey")) for s in scans)
    assert len(query.page(big_trail, FILTERS[name], before=EVENTS - 100, limit=50)) <= 50


def _nodes(plan: dict) -> list[dict]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


def _recorded_at(store: IntegrityStore, seq: int) -> str:
    row = query.get(store, seq)
    assert row is not None and row.record is not None
    return row.record.as_dict()["recorded_at"]


def test_a_narrow_old_window_is_read_through_its_time_index_not_by_walking_the_chain(
    big_trail: IntegrityStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window deep in the trail: the planner alone walks the primary key from the newest event."""
    monkeypatch.setattr(query, "NARROW_WINDOW", 5_000)  # this trail is 20,000 events
    window = query.EventFilter(since=_recorded_at(big_trail, 2_000), until=_recorded_at(big_trail, 2_500))
    assert big_trail.reading(lambda reads: query.window_is_narrow(reads, "postgresql", window))
    everything = query.EventFilter(since="2000-01-01")
    assert not big_trail.reading(lambda reads: query.window_is_narrow(reads, "postgresql", everything))
    statement, params = query.page_query("postgresql", window, limit=50, narrow_window=True)
    with big_trail.read() as conn:
        sql = str(statement.bindparams(**params).compile(conn, compile_kwargs={"literal_binds": True}))
        plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}").scalar_one()
    nodes = _nodes(plan[0]["Plan"] if isinstance(plan, list) else json.loads(plan)[0]["Plan"])
    assert "ix_integrity_audit_event_recorded_at" in {node.get("Index Name") for node in nodes}, nodes
    # The same page as walking the chain would give, newest first, and the next one from its cursor.
    walked = [r.seq for r in query.page(big_trail, query.EventFilter(since="2000-01-01"), before=2_500, limit=50)]
    page = query.page(big_trail, window, limit=50)
    assert [r.seq for r in page] == walked == list(range(2_499, 2_449, -1))
    assert [r.seq for r in query.page(big_trail, window, before=page[-1].seq, limit=3)] == [2_449, 2_448, 2_447]


def test_reads_are_planned_for_their_values_and_writes_keep_prepared_statements(big_trail: IntegrityStore) -> None:
    """psycopg prepares a statement after five runs; PostgreSQL may then keep one generic plan for every value,
    which walked the whole chain for a rare event type. Reads are never prepared."""
    statement, params = query.page_query("postgresql", FILTERS["event type"], limit=5)
    prepared = "SELECT count(*) FROM pg_prepared_statements"

    def newly_prepared(reads: Any) -> int:
        # The connection may hold the audit writer's prepared statements: count the ones the pages add.
        before = int(reads.all(text(prepared), {})[0][0])
        for _ in range(8):
            reads.all(statement, params)
        return int(reads.all(text(prepared), {})[0][0]) - before

    assert big_trail.reading(newly_prepared) == 0
    with big_trail.read() as conn:
        for _ in range(8):
            conn.execute(statement, params).all()
        assert conn.exec_driver_sql(prepared).scalar_one() == 0
    with big_trail.begin() as conn:
        for _ in range(8):
            conn.execute(statement, params).all()
        assert conn.exec_driver_sql(prepared).scalar_one() >= 1


def test_a_page_is_one_statement_and_survives_the_loss_of_its_reused_connection(
    big_trail: IntegrityStore, pg_server: Any
) -> None:
    """A page goes to PostgreSQL as its one statement (no liveness ping, BEGIN or COMMIT around it); when the
    server has closed the idle connections a page reuses, the page is read on a new one."""
    query.page(big_trail, FILTERS["dag"], limit=5)  # leaves a connection idle for reuse
    with sent_statements() as sent:
        first = query.page(big_trail, FILTERS["dag"], limit=5)
    assert [statement for statement, _ in sent] == [
        connections.driver_sql(query.page_query("postgresql", FILTERS["dag"], limit=5)[0].text)
    ]
    assert (
        terminate_other_sessions(big_trail.location.url.set(drivername="postgresql").render_as_string(False)) >= 1
    )
    assert [r.seq for r in query.page(big_trail, FILTERS["dag"], limit=5)] == [r.seq for r in first]
    assert [r.record.dag_id for r in first if r.record is not None] == ["dag_7"] * 5


@pytest.mark.parametrize("event_type", ["type.7", "type.0"])
def test_the_events_of_a_page_of_runs_are_one_statement_read_through_an_index(
    big_trail: IntegrityStore, event_type: str
) -> None:
    """The quarantine flags of a page of validations: one statement for all its runs, each run's events found
    through an index, never by scanning the trail; exactly the runs' events of that type, oldest first."""
    runs = {(f"dag_{n % 40}", f"run_{n}") for n in range(0, 400, 8)} | {("dag_7", "run_7"), ("dag_0", "nowhere")}
    with sent_statements() as sent:
        found = query.of_runs(big_trail, runs, event_type)
    assert len(sent) == 1
    with big_trail.read() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sent[0][0]}", sent[0][1]).scalar_one()
    scans = [(n["Node Type"], n.get("Relation Name")) for n in _nodes(plan[0]["Plan"])]
    assert not [s for s in scans if s == ("Seq Scan", "integrity_audit_event")], scans
    # Event n (seq n + 1) is of type n % 8 in run n % 400: run_7 holds 50 events of type.7, runs 0, 8, ... 50 of
    # type.0 each.
    expected = [
        n + 1
        for n in range(EVENTS)
        if (f"dag_{n % 40}", f"run_{n % 400}") in runs and n % 8 == int(event_type[-1])
    ]
    assert [row.seq for row in found] == expected and len(expected) == (50 if event_type == "type.7" else 2500)
    assert {(r.record.dag_id, r.record.run_id, r.record.event_type) for r in found if r.record} <= {
        (dag, run, event_type) for dag, run in runs
    }
