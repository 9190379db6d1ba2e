"""Every filter of the trail's pages is served by an index on PostgreSQL: the plan PostgreSQL chooses for each
reads an index of revision a4 (or the primary key) and never scans the events table.

The trail here has 20,000 events over 40 DAGs, 400 runs, 2,000 business keys, 8 event types and 5 actors, and
statistics (ANALYZE), so that the planner chooses as it would on a store in use.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit import query
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import AuditEvent

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
