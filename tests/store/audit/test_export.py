"""Exports for reviewers: filtered, readable, and stating whether the chain verified."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from airflow_integrity.store import IntegrityStore
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import (
    AuditEvent,
    AuditEventError,
    canonical_body,
    chain_hash,
    format_timestamp,
)
from airflow_integrity.store.audit.export import CSV_COLUMNS, export
from airflow_integrity.store.audit.schema import EVENT
from tests.store.audit.test_tamper import tampering

pytestmark = pytest.mark.integration


def _trail(store: IntegrityStore) -> list:
    """Claim 42 goes through two DAGs and two runs, among other claims."""
    events = []
    for run in ("run-1", "run-2"):
        for claim in ("claim-41", "claim-42", "claim-43"):
            step = {"dag_id": "intake", "run_id": run, "task_id": "validate", "business_key": claim}
            events.append(AuditEvent("task_instance.success", "worker@host", details={"claim": claim}, **step))
    approval = {"dag_id": "payout", "run_id": "run-9", "task_id": "approve", "business_key": "claim-42"}
    events.append(AuditEvent("approval.granted", "alice", details={"meaning": "approval"}, **approval))
    return AuditLog(store).append_many(events)


def _jsonl(store: IntegrityStore, **filters: object) -> list[dict]:
    out = io.StringIO()
    export(store, "jsonl", out=out, **filters)  # type: ignore[arg-type]
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.requirement("hipaa.164.312b")
def test_everything_about_one_claim_across_dags_and_runs(store: IntegrityStore) -> None:
    records = _trail(store)
    lines = _jsonl(store, business_key="claim-42")
    header, *events, end = lines
    assert header["record"] == "audit_export" and header["verified"] is True
    assert header["verification"]["head_hash"] == records[-1].hash
    assert header["verification"]["count"] == len(records)
    assert header["filters"] == {"business_key": "claim-42"}
    assert "VERIFIED" in header["summary"] and records[-1].hash in header["summary"]
    expected = [r for r in records if r.business_key == "claim-42"]
    assert [e["seq"] for e in events] == [r.seq for r in expected]
    assert [(e["dag_id"], e["run_id"]) for e in events] == [
        ("intake", "run-1"),
        ("intake", "run-2"),
        ("payout", "run-9"),
    ]
    assert all(e["record"] == "event" and e["verified"] is True for e in events)
    assert events[-1]["details"] == {"meaning": "approval"} and events[-1]["actor"] == "alice"
    assert events[0]["hash"] == expected[0].hash and events[0]["prev_hash"] == expected[0].prev_hash
    assert end == {"record": "end", "events": 3, "verified": True}


@pytest.mark.requirement("part11.11.10b")
def test_exported_fields_recompute_each_hash(store: IntegrityStore) -> None:
    _trail(store)
    _, *events, _ = _jsonl(store)
    for event in events:
        body = {k: event[k] for k in event if k not in ("record", "verified", "seq", "prev_hash", "hash")}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert chain_hash(event["prev_hash"], event["seq"], canonical.encode()) == event["hash"]


def test_dag_run_and_time_filters(store: IntegrityStore) -> None:
    records = _trail(store)
    assert [e["seq"] for e in _jsonl(store, dag_id="intake", run_id="run-2")[1:-1]] == [4, 5, 6]
    middle = records[3].recorded_at
    since = [e["seq"] for e in _jsonl(store, since=middle)[1:-1]]
    until = [e["seq"] for e in _jsonl(store, until=format_timestamp(middle))[1:-1]]
    assert since == [r.seq for r in records if r.recorded_at >= middle]
    assert until == [r.seq for r in records if r.recorded_at < middle]
    assert _jsonl(store, since=middle + timedelta(days=1))[1:-1] == []


@pytest.mark.requirement("alcoa.legible", "part11.11.10b")
def test_csv_states_the_verification_and_is_readable(store: IntegrityStore) -> None:
    records = _trail(store)
    out = io.StringIO(newline="")
    summary = export(store, "csv", out=out, business_key="claim-41")
    first, *rest = out.getvalue().splitlines()
    assert first.startswith("# airflow-integrity audit export: chain VERIFIED") and records[-1].hash in first
    assert rest[-1] == "# end of export: 2 events; chain VERIFIED"
    rows = list(csv.DictReader(rest[:-1]))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [(r["business_key"], r["run_id"], r["verified"]) for r in rows] == [
        ("claim-41", "run-1", "True"),
        ("claim-41", "run-2", "True"),
    ]
    assert json.loads(rows[0]["details"]) == {"claim": "claim-41"}
    assert summary.events == 2 and summary.verification.ok


def test_csv_cells_recompute_each_hash(store: IntegrityStore) -> None:
    """A CSV row holds what its event's hash covers: the body rebuilt from its cells (details as written, the
    canonical JSON) hashes to the row's hash, also for details with nesting and non-ASCII text."""
    records = _trail(store)
    details = {"name": "Zoë Ørsted — 東京", "nested": {"b": [1, 2.5, None], "a": True}, "quote": 'say "hi"\n'}
    AuditLog(store).append_many([AuditEvent("claim.noted", "zoë@host", business_key="k", details=details)])
    out = io.StringIO(newline="")
    export(store, "csv", out=out)
    rows = list(csv.DictReader(out.getvalue().splitlines(keepends=True)[1:-1]))
    assert len(rows) == len(records) + 1 and json.loads(rows[-1]["details"]) == details
    for row in rows:
        fields = {
            name: row[name] or None for name in CSV_COLUMNS if name not in ("seq", "verified", "prev_hash", "hash")
        }
        body = canonical_body(
            **{k: v for k, v in fields.items() if k not in ("details", "map_index", "try_number")},
            map_index=None if fields["map_index"] is None else int(fields["map_index"]),
            try_number=None if fields["try_number"] is None else int(fields["try_number"]),
            details_json=row["details"],
        )
        assert chain_hash(row["prev_hash"], int(row["seq"]), body.encode()) == row["hash"], row["seq"]
        assert row["verified"] == "True"


def test_export_of_a_tampered_trail_says_so_and_flags_events_from_the_first_bad_one(store: IntegrityStore) -> None:
    _trail(store)
    with tampering(store) as conn:
        conn.execute(text(f"UPDATE {EVENT} SET body = replace(body, 'alice', 'mallory') WHERE seq = 7"))
        conn.execute(text(f"DELETE FROM {EVENT} WHERE seq = 3"))
    header, *events, end = _jsonl(store, business_key="claim-42")
    assert header["verified"] is False and end["verified"] is False
    assert header["verification"]["first_bad_seq"] == 3 and header["verification"]["reason"] == "gap"
    assert "NOT VERIFIED" in header["summary"]
    assert [(e["seq"], e["verified"]) for e in events] == [(2, True), (5, False), (7, False)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"fmt": "xml"}, "xml"), ({"since": "last tuesday"}, "ISO-8601")],
)
def test_bad_export_arguments_are_explained(store: IntegrityStore, kwargs: dict, message: str) -> None:
    with pytest.raises(AuditEventError, match=message):
        export(store, out=io.StringIO(), **kwargs)


def test_a_business_key_brings_the_unkeyed_events_of_its_runs(store: IntegrityStore) -> None:
    run = {"dag_id": "claim_review", "run_id": "manual__1"}
    other = {"dag_id": "claim_review", "run_id": "manual__2"}
    events = [
        AuditEvent("task_instance.running", "worker@h", task_id="receive", **run),
        AuditEvent("claim.received", "worker@h", task_id="receive", business_key="claim-42", **run),
        AuditEvent("claim.received", "worker@h", task_id="receive", business_key="claim-43", **run),
        AuditEvent("approval.signed", "alice", task_id="approve", details={"meaning": "approval"}, **run),
        AuditEvent("task_instance.running", "worker@h", task_id="receive", **other),
        AuditEvent("dag_run.success", "scheduler@h", **run),
    ]
    AuditLog(store).append_many(events)
    story = [(e["event_type"], e["business_key"]) for e in _jsonl(store, business_key="claim-42")[1:-1]]
    # The run's own events come along; claim 43's event and the other run's events do not.
    assert story == [
        ("task_instance.running", None),
        ("claim.received", "claim-42"),
        ("approval.signed", None),
        ("dag_run.success", None),
    ]
    out = io.StringIO()
    export(store, "jsonl", out=out, business_key="claim-42", with_runs=False)
    only_keyed = [json.loads(line) for line in out.getvalue().splitlines()][1:-1]
    assert [e["event_type"] for e in only_keyed] == ["claim.received"]


@pytest.mark.requirement("alcoa.original")
def test_a_verified_event_line_is_its_stored_body_with_the_chain_fields(store: IntegrityStore) -> None:
    """Verified bodies are written as stored (not re-encoded): each line says exactly what the record does."""
    details = {"name": "Zoë Ørsted — 東京", "nested": {"b": [1, 2.5, None], "a": True}, "quote": 'say "hi"\n'}
    noted = AuditEvent("claim.noted", "zoë@host", business_key="k", details=details)
    records = AuditLog(store).append_many([noted])
    _, line, _ = _jsonl(store)
    assert line == {**records[0].as_dict(), "record": "event", "verified": True}
