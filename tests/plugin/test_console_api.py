"""The integrity API on real SQLite and PostgreSQL stores, authorized by a real auth manager with JWTs.

Users (``tests/plugin/api_support.py``): ``admin``; ``op``; ``user``; ``viewer`` (reads everything, changes
nothing); ``claims-reviewer`` (role user, but only DAG ``claims``, nothing store-wide).
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.plugin.api import create_app
from airflow_integrity.store.audit.event import AuditEvent
from tests.plugin.api_support import auth_manager, login  # noqa: F401 (fixture)
from tests.statements import sent_statements

pytestmark = pytest.mark.integration
V1 = "/api/v1"


def _record(**fields: Any) -> None:
    fields.setdefault("actor", "scheduler@host")
    IntegrityCheckHook().record_event(AuditEvent(**fields), chain=True)


def _seed_trail() -> None:
    """claim-42 across two runs of DAG claims, claim-7 in DAG payments, and a store-wide event."""
    _record(event_type="dag_run.running", dag_id="claims", run_id="r1")
    _record(event_type="validation.passed", dag_id="claims", run_id="r1", task_id="check", business_key="claim-42")
    _record(event_type="task_instance.success", dag_id="claims", run_id="r1", task_id="check", try_number=1)
    _record(
        event_type="approval.granted",
        dag_id="claims",
        run_id="r2",
        task_id="approve",
        actor="alice",
        business_key="claim-42",
        details={"meaning": "approved for payment"},
    )
    _record(event_type="task_instance.success", dag_id="claims", run_id="r2", task_id="approve", try_number=1)
    _record(event_type="task_instance.success", dag_id="claims", run_id="r3", task_id="approve", try_number=1)
    _record(
        event_type="idempotency.completed", dag_id="payments", run_id="p1", task_id="pay", business_key="claim-7"
    )
    _record(event_type="store.migrated", details={"to": "head"})


@pytest.fixture
def app(store_conn_env: str, auth_manager):  # noqa: F811
    from airflow_integrity.store import IntegrityStore, StoreLocation

    IntegrityStore(StoreLocation.from_url(store_conn_env, source="test")).migrate()
    return create_app()


def _as(auth_manager, app, name):  # noqa: F811
    return login(auth_manager, app, name)


@pytest.mark.requirement("annex11.12", "part11.11.10d")
def test_every_route_refuses_a_request_without_credentials(app) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(app)
    routes = [r for r in app.routes if getattr(r, "path", "").startswith(V1)]
    assert len(routes) >= 12
    for route in routes:
        for method in route.methods - {"HEAD"}:
            path = route.path.replace("{seq}", "1").replace("{key:path}", "k").replace("{business_key:path}", "k")
            path = path.replace("{namespace}", "default").replace("{result_id}", "x").replace("{dag_id}", "d")
            assert client.request(method, path).status_code == 401, (method, path)
    forged = TestClient(app, headers={"Authorization": "Bearer not-a-jwt"})
    assert forged.get(f"{V1}/events").status_code in (401, 403)


@pytest.mark.requirement("hipaa.164.312b")
def test_events_newest_first_with_every_filter(app, auth_manager) -> None:  # noqa: F811
    _seed_trail()
    admin = _as(auth_manager, app, "admin")
    page = admin.get(f"{V1}/events").json()
    seqs = [e["seq"] for e in page["events"]]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 8 and page["head_seq"] == 8
    assert page["events"][0]["event_type"] == "store.migrated"

    def types(**params: Any) -> list[str]:
        response = admin.get(f"{V1}/events", params=params)
        assert response.status_code == 200, response.text
        return [e["event_type"] for e in response.json()["events"]]

    assert types(dag_id="payments") == ["idempotency.completed"]
    assert types(dag_id="claims", run_id="r2") == ["task_instance.success", "approval.granted"]
    assert types(task_id="check") == ["task_instance.success", "validation.passed"]
    assert types(business_key="claim-42") == ["approval.granted", "validation.passed"]
    assert types(event_type="approval.granted") == ["approval.granted"]
    assert types(actor="alice") == ["approval.granted"]
    assert types(since="2000-01-01", until="2000-01-02") == []
    assert len(types(since="2000-01-01T00:00:00Z")) == 8
    bad = admin.get(f"{V1}/events", params={"since": "yesterday"})
    assert bad.status_code == 400 and "since 'yesterday'" in bad.json()["detail"]
    assert admin.get(f"{V1}/events", params={"cursor": "x"}).status_code == 400
    # Cursors past the 64-bit sequence numbers are refused, not passed to the database (found by the fuzz).
    assert admin.get(f"{V1}/events", params={"cursor": str(2**63)}).status_code == 400
    assert admin.get(f"{V1}/checkpoints", params={"cursor": str(2**63)}).status_code == 422
    assert admin.get(f"{V1}/events", params={"limit": 0}).status_code == 422
    # A mapped task's instances, one by one.
    for index in (0, 1):
        _record(event_type=f"mapped.{index}", dag_id="claims", run_id="r4", task_id="fan", map_index=index)
    assert types(dag_id="claims", run_id="r4", task_id="fan", map_index=1) == ["mapped.1"]
    assert types(task_id="check", map_index=-1) == []  # the seeded events name no map index


@pytest.mark.requirement("alcoa.consistent")
def test_pages_by_cursor_stay_stable_while_events_are_appended(app, auth_manager) -> None:  # noqa: F811
    for n in range(30):
        _record(event_type="step", dag_id="claims", run_id="r1", details={"n": n})
    admin = _as(auth_manager, app, "admin")
    first = admin.get(f"{V1}/events", params={"limit": 10}).json()
    seen = [e["seq"] for e in first["events"]]
    stop = threading.Event()

    def append() -> None:
        while not stop.is_set():
            _record(event_type="step", dag_id="claims", run_id="r9")

    writer = threading.Thread(target=append)
    writer.start()
    try:
        cursor = first["next_cursor"]
        while cursor:
            page = admin.get(f"{V1}/events", params={"limit": 10, "cursor": cursor}).json()
            seen += [e["seq"] for e in page["events"]]
            cursor = page["next_cursor"]
    finally:
        stop.set()
        writer.join()
    assert seen == list(range(30, 0, -1)), "every event before the first page, once each, in order"


@pytest.mark.requirement("part11.11.10d")
def test_a_scoped_user_sees_only_their_dags_and_nothing_store_wide(app, auth_manager) -> None:  # noqa: F811
    _seed_trail()
    reviewer = _as(auth_manager, app, "claims-reviewer")
    events = reviewer.get(f"{V1}/events").json()["events"]
    assert {e["dag_id"] for e in events} == {"claims"} and len(events) == 6
    assert reviewer.get(f"{V1}/events", params={"dag_id": "payments"}).status_code == 403
    assert reviewer.get(f"{V1}/events", params={"business_key": "claim-7"}).json()["events"] == []
    store_wide = 8  # the seq of store.migrated
    payments = 7
    assert reviewer.get(f"{V1}/events/{store_wide}").status_code == 404
    assert reviewer.get(f"{V1}/events/{payments}").status_code == 404
    assert reviewer.get(f"{V1}/events/1").status_code == 200
    assert reviewer.get(f"{V1}/verification").status_code == 403
    assert reviewer.get(f"{V1}/checkpoints").status_code == 403
    viewer = _as(auth_manager, app, "viewer")
    assert len(viewer.get(f"{V1}/events").json()["events"]) == 8


def test_one_event_with_its_body_and_hashes(app, auth_manager) -> None:  # noqa: F811
    _seed_trail()
    admin = _as(auth_manager, app, "admin")
    first, fourth = admin.get(f"{V1}/events/1").json(), admin.get(f"{V1}/events/4").json()
    assert first["links_to_previous"] and first["prev_hash"] == "0" * 64
    assert fourth["hash_matches"] and fourth["links_to_previous"] and fourth["chained"]
    assert json.loads(fourth["body"])["details"] == {"meaning": "approved for payment"}
    assert fourth["prev_hash"] == admin.get(f"{V1}/events/3").json()["hash"]
    assert fourth["covered_by_checkpoint"] is False
    assert admin.get(f"{V1}/events/99").status_code == 404
    assert admin.get(f"{V1}/events/{2**70}").status_code in (404, 422)


@pytest.mark.requirement("alcoa.available", "part11.11.10b")
def test_a_business_keys_story_across_runs_and_its_download(app, auth_manager, store_conn_env) -> None:  # noqa: F811
    from airflow_integrity.store.audit.export import export

    _seed_trail()
    admin = _as(auth_manager, app, "admin")
    story = admin.get(f"{V1}/stories/claim-42").json()["events"]
    # Keyed events and the unkeyed events of runs r1 and r2 (not r3, not payments), oldest first.
    assert [(e["run_id"], e["event_type"]) for e in story] == [
        ("r1", "dag_run.running"),
        ("r1", "validation.passed"),
        ("r1", "task_instance.success"),
        ("r2", "approval.granted"),
        ("r2", "task_instance.success"),
    ]
    paged = admin.get(f"{V1}/stories/claim-42", params={"limit": 2}).json()
    rest = admin.get(f"{V1}/stories/claim-42", params={"cursor": paged["next_cursor"]}).json()
    assert [e["seq"] for e in paged["events"] + rest["events"]] == [e["seq"] for e in story]

    for fmt in ("jsonl", "csv"):
        download = admin.get(f"{V1}/stories/claim-42/export", params={"format": fmt})
        assert download.status_code == 200
        assert f"story-claim-42.{fmt}" in download.headers["content-disposition"]
        out = io.StringIO(newline="")
        export(IntegrityCheckHook().get_store(), fmt, out=out, business_key="claim-42")
        cli, api = out.getvalue().splitlines(), download.text.splitlines()
        if fmt == "jsonl":  # the same lines but for the moment of export
            header_cli, header_api = json.loads(cli[0]), json.loads(api[0])
            assert header_cli.pop("exported_at") and header_api.pop("exported_at")
            assert header_cli == header_api and header_api["verified"] is True
            assert cli[1:] == api[1:] and len(api) == 7
        else:
            assert cli == api
            rows = list(csv.reader(api[1:-1]))
            assert [row[2] for row in rows[1:]][3] == "approval.granted"


def test_the_story_download_leaves_out_what_the_user_may_not_read(app, auth_manager) -> None:  # noqa: F811
    _record(event_type="claim.opened", dag_id="claims", run_id="r1", business_key="claim-9")
    _record(event_type="claim.paid", dag_id="payments", run_id="p1", business_key="claim-9")
    reviewer = _as(auth_manager, app, "claims-reviewer")
    lines = reviewer.get(f"{V1}/stories/claim-9/export").text.splitlines()
    events = [json.loads(line) for line in lines[1:-1]]
    assert [e["event_type"] for e in events] == ["claim.opened"]
    assert json.loads(lines[0])["filters"]["limited_to"]


def test_verification_status_run_and_checkpoints(app, auth_manager, monkeypatch) -> None:  # noqa: F811
    from airflow_integrity.store.audit.checkpoints import create_checkpoint
    from airflow_integrity.store.audit.signing import CheckpointKey

    _seed_trail()
    secret = "checkpoint-secret-of-the-tests"
    monkeypatch.setenv(
        "AIRFLOW_CONN_INTEGRITY_CHECKPOINT_KEY", json.dumps({"conn_type": "generic", "password": secret})
    )
    monkeypatch.setenv("AIRFLOW__INTEGRITY__CHECKPOINT_KEY_CONN_ID", "integrity_checkpoint_key")
    store = IntegrityCheckHook().get_store()
    create_checkpoint(store, CheckpointKey.from_secret(secret))
    viewer, op = _as(auth_manager, app, "viewer"), _as(auth_manager, app, "op")

    status = viewer.get(f"{V1}/verification").json()
    assert status["head_seq"] == 8 and status["pending"] == 0 and status["last_verification"] is None
    assert status["last_checkpoint"]["seq"] == 8 and status["last_checkpoint"]["signature_valid"] is True

    assert viewer.post(f"{V1}/verification").status_code == 403
    # A page of another site (or a sibling subdomain) riding the session cookie changes nothing.
    for site in ("cross-site", "same-site"):
        refused = op.post(f"{V1}/verification", headers={"Sec-Fetch-Site": site})
        assert refused.status_code == 403 and "another site" in refused.json()["detail"]
        body = {"namespace": "default", "key": "any", "reason": "forged"}
        assert op.post(f"{V1}/ledger/release", json=body, headers={"Sec-Fetch-Site": site}).status_code == 403
    assert viewer.get(f"{V1}/verification", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200
    assert viewer.get(f"{V1}/events", params={"event_type": "audit.verified"}).json()["events"] == []
    run = op.post(f"{V1}/verification", headers={"Sec-Fetch-Site": "same-origin"})
    assert run.status_code == 200, run.text
    assert run.json()["ok"] is True and run.json()["signatures_checked"] is True
    status = viewer.get(f"{V1}/verification").json()
    assert status["last_verification"]["verified_by"] == "op" and status["last_verification"]["head_seq"] == 8
    audited = viewer.get(f"{V1}/events", params={"event_type": "audit.verified"}).json()["events"]
    assert audited[0]["actor"] == "op" and audited[0]["details"]["ok"] is True

    checkpoints = viewer.get(f"{V1}/checkpoints").json()["checkpoints"]
    assert [c["seq"] for c in checkpoints] == [8] and checkpoints[0]["signature_valid"] is True
    monkeypatch.setenv(
        "AIRFLOW_CONN_INTEGRITY_CHECKPOINT_KEY",
        json.dumps({"conn_type": "generic", "password": "another-secret-entirely"}),
    )
    assert viewer.get(f"{V1}/checkpoints").json()["checkpoints"][0]["signature_valid"] is None


def test_a_verification_names_the_first_bad_seq(app, auth_manager, store_conn_env) -> None:  # noqa: F811
    from sqlalchemy import text

    _seed_trail()
    store = IntegrityCheckHook().get_store()
    trigger = "integrity_audit_event_append_only"
    with store.begin() as conn:
        if store.backend == "postgresql":
            conn.execute(text(f"ALTER TABLE integrity_audit_event DISABLE TRIGGER {trigger}"))
            conn.execute(
                text("UPDATE integrity_audit_event SET body = replace(body, 'alice', 'mallory') WHERE seq = 4")
            )
            conn.execute(text(f"ALTER TABLE integrity_audit_event ENABLE TRIGGER {trigger}"))
        else:
            names = [
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                        "AND tbl_name = 'integrity_audit_event'"
                    )
                )
            ]
            sql = {
                n: conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": n}).scalar()
                for n in names
            }
            for name in names:
                conn.execute(text(f"DROP TRIGGER {name}"))
            conn.execute(
                text("UPDATE integrity_audit_event SET body = replace(body, 'alice', 'mallory') WHERE seq = 4")
            )
            for name in names:
                conn.execute(text(sql[name]))
    outcome = _as(auth_manager, app, "admin").post(f"{V1}/verification").json()
    assert outcome["ok"] is False and outcome["first_bad_seq"] == 4 and outcome["reason"]
    detail = _as(auth_manager, app, "admin").get(f"{V1}/events/4").json()
    assert detail["hash_matches"] is False and detail["actor"] == "mallory"


EDGE = "0001-01-01T00:00:00+01:00"


@pytest.mark.parametrize(
    "body",
    [
        "[1, 2]",
        '{"event_type": "task_instance.success"}',
        "TAMPERED_DETAILS",
        "TAMPERED_MAP_INDEX",
        "TAMPERED_TIME",
        "TAMPERED_DAY",
        "TAMPERED_EDGE",
    ],
)
def test_a_body_that_is_no_events_json_is_listed_as_unreadable_not_an_error(app, auth_manager, body) -> None:  # noqa: F811
    """A row rewritten behind the store's back (JSON, but not an event's) is listed with its raw text and
    readable false, in the trail, the event's detail and the story; never a server error."""
    from sqlalchemy import text

    from tests.store.audit.test_tamper import tampering

    _seed_trail()
    store = IntegrityCheckHook().get_store()
    with tampering(store) as conn:
        original = conn.execute(text("SELECT body FROM integrity_audit_event WHERE seq = 2")).scalar_one()
        changed = {
            "TAMPERED_DETAILS": original.replace('"details":{}', '"details":"none"'),
            "TAMPERED_MAP_INDEX": original.replace('"map_index":null', '"map_index":"0"'),
            "TAMPERED_TIME": original.replace('"recorded_at":"', '"recorded_at":"yesterday '),
            "TAMPERED_DAY": re.sub(r'"recorded_at":"[0-9-]{10}', '"recorded_at":"2025-02-29', original),
            # A valid time whose offset puts its UTC moment before year 1.
            "TAMPERED_EDGE": re.sub(
                r'"recorded_at":"[^"]+"', '"recorded_at":"0001-01-01T00:00:00+01:00"', original
            ),
        }.get(body, body)
        assert changed != original
        conn.execute(text("UPDATE integrity_audit_event SET body = :body WHERE seq = 2"), {"body": changed})
    admin = _as(auth_manager, app, "admin")
    listed = {e["seq"]: e for e in admin.get(f"{V1}/events").json()["events"]}
    assert listed[2]["readable"] is False and listed[2]["details"] == {"unreadable_body": changed}
    assert all(e["readable"] for seq, e in listed.items() if seq != 2)
    detail = admin.get(f"{V1}/events/2")
    assert detail.status_code == 200 and detail.json()["readable"] is False
    story = admin.get(f"{V1}/stories/claim-42").json()["events"]
    # The row is found by the fields still in its body: those that kept the business key are in the story.
    assert [e["readable"] for e in story if e["seq"] == 2] == ([False] if "claim-42" in changed else [])
    for fmt in ("jsonl", "csv"):
        download = admin.get(f"{V1}/stories/claim-42/export", params={"format": fmt})
        assert download.status_code == 200 and "end" in download.text.splitlines()[-1], download.text[-300:]


def test_a_time_written_with_another_offset_is_read_as_its_utc_moment(app, auth_manager) -> None:  # noqa: F811
    """A body whose time was rewritten with a zone other than Z (not canonical: its hash no longer matches) is
    still an event's JSON: listed readable, its time given in the canonical UTC form."""
    from sqlalchemy import text

    from tests.store.audit.test_tamper import tampering

    _seed_trail()
    store = IntegrityCheckHook().get_store()
    with tampering(store) as conn:
        original = conn.execute(text("SELECT body FROM integrity_audit_event WHERE seq = 2")).scalar_one()
        moment = re.search(r'"recorded_at":"([^"]+)Z"', original)
        assert moment is not None
        shifted = (
            datetime.fromisoformat(moment.group(1)).replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
        )
        changed = original.replace(moment.group(0), f'"recorded_at":"{shifted.isoformat()}"')
        conn.execute(text("UPDATE integrity_audit_event SET body = :body WHERE seq = 2"), {"body": changed})
    admin = _as(auth_manager, app, "admin")
    listed = {e["seq"]: e for e in admin.get(f"{V1}/events").json()["events"]}
    assert listed[2]["readable"] is True and listed[2]["recorded_at"] == f"{moment.group(1)}Z"
    detail = admin.get(f"{V1}/events/2").json()
    assert detail["readable"] is True and detail["hash_matches"] is False and detail["body"] == changed
    # A bound whose offset takes it out of the calendar in UTC is refused as bad input, not a server error.
    outside = admin.get(f"{V1}/events", params={"since": "0001-01-01T00:00:00+01:00"})
    assert outside.status_code == 400 and "outside the years 1 to 9999" in outside.text


def test_a_body_stored_as_bytes_on_sqlite_is_shown_and_checked_as_stored(app, auth_manager) -> None:  # noqa: F811
    """SQLite keeps whatever type is written: a body rewritten as a BLOB of the same bytes is listed, detailed with
    its hash checked over the stored bytes, and exported; never a 500. (Bytes that are not JSON cannot be written:
    the indexes on the body's fields refuse them.)"""
    from sqlalchemy import text

    from tests.store.audit.test_tamper import tampering

    _seed_trail()
    store = IntegrityCheckHook().get_store()
    if store.backend != "sqlite":
        pytest.skip("PostgreSQL keeps a text column's type")
    with tampering(store) as conn:
        conn.execute(text("UPDATE integrity_audit_event SET body = CAST(body AS BLOB) WHERE seq = 2"))
        assert (
            conn.execute(text("SELECT typeof(body) FROM integrity_audit_event WHERE seq = 2")).scalar() == "blob"
        )
    admin = _as(auth_manager, app, "admin")
    listed = {e["seq"]: e for e in admin.get(f"{V1}/events").json()["events"]}
    assert listed[2]["readable"] is True and listed[2]["seq"] == 2
    detail = admin.get(f"{V1}/events/2")
    assert detail.status_code == 200 and detail.json()["hash_matches"] is True
    assert admin.post(f"{V1}/verification").json()["ok"] is True
    for fmt in ("jsonl", "csv"):
        download = admin.get(f"{V1}/stories/claim-42/export", params={"format": fmt})
        assert download.status_code == 200 and "end" in download.text.splitlines()[-1]


def _validation(dag_id: str, run_id: str, status: str, *, quarantine: bool = False) -> str:
    from airflow_integrity.store import validation_results

    failures = (
        []
        if status == "passed"
        else [
            {
                "type": "expect_column_values_to_not_be_null",
                "severity": "critical",
                "column": "amount",
                "unexpected_count": 2,
                "samples": [None],
            }
        ]
    )
    summary = {
        "success": status != "failed",
        "suite": {"name": "claims_suite", "fingerprint": "sha256:s"},
        "data": {"fingerprint": "sha256:d", "rows": 10},
        "failures": failures,
        "statistics": {"evaluated_expectations": 3, "unsuccessful_expectations": len(failures)},
    }
    identity = {"dag_id": dag_id, "run_id": run_id, "task_id": "check", "map_index": -1, "try_number": 1}
    result_id = validation_results.save(
        IntegrityCheckHook().get_store(),
        summary=summary,
        full_result={"results": [{"success": status == "passed"}]},
        status=status,
        identity=identity,
    )
    if quarantine:
        _record(
            event_type="validation.quarantined",
            dag_id=dag_id,
            run_id=run_id,
            task_id="check",
            details={"result_id": result_id},
        )
    return result_id


def test_validations_per_run_and_in_full(app, auth_manager) -> None:  # noqa: F811
    passed = _validation("claims", "r1", "passed")
    failed = _validation("claims", "r2", "failed", quarantine=True)
    other = _validation("payments", "p1", "warned")
    admin = _as(auth_manager, app, "admin")
    listed = admin.get(f"{V1}/validations").json()["validations"]
    assert [v["result_id"] for v in listed] == [other, failed, passed]
    run = admin.get(f"{V1}/validations", params={"dag_id": "claims", "run_id": "r2"}).json()["validations"]
    assert len(run) == 1 and run[0]["status"] == "failed" and run[0]["quarantined"] is True
    assert run[0]["failures"][0]["unexpected_count"] == 2 and run[0]["rows"] == 10
    assert (
        admin.get(f"{V1}/validations", params={"status": "passed"}).json()["validations"][0]["result_id"] == passed
    )
    page = admin.get(f"{V1}/validations", params={"limit": 2}).json()
    rest = admin.get(f"{V1}/validations", params={"cursor": page["next_cursor"]}).json()
    assert [v["result_id"] for v in page["validations"] + rest["validations"]] == [other, failed, passed]
    full = admin.get(f"{V1}/validations/{failed}").json()
    assert (
        full["full_result"] == {"results": [{"success": False}]}
        and full["summary"]["suite"]["name"] == "claims_suite"
    )
    # The page and its quarantine flags are two statements, whatever the number of runs on the page.
    with sent_statements() as statements:
        assert len(admin.get(f"{V1}/validations").json()["validations"]) == 3
    store_reads = [
        s for s, _ in statements if s.lstrip().upper().startswith(("SELECT", "WITH")) and "integrity_" in s
    ]
    assert len(store_reads) == 2, store_reads
    reviewer = _as(auth_manager, app, "claims-reviewer")
    assert {v["dag_id"] for v in reviewer.get(f"{V1}/validations").json()["validations"]} == {"claims"}
    assert reviewer.get(f"{V1}/validations/{other}").status_code == 404
    assert admin.get(f"{V1}/validations", params={"cursor": "garbage"}).status_code == 400


def _claimed(
    key: str, dag_id: str | None, *, complete: bool = True, namespace: str = "default", run_id: str = "r1"
) -> None:
    from airflow_integrity.store.ledger import IdempotencyLedger
    from airflow_integrity.store.ledger.codec import inputs_digest

    holder = {"dag_id": dag_id, "run_id": run_id, "task_id": "pay", "try_number": 1} if dag_id else {"cli": True}
    with IdempotencyLedger(IntegrityCheckHook().get_store(), namespace=namespace) as ledger:
        outcome = ledger.claim(key, fingerprint=inputs_digest({"key": key}), holder=holder, lease_seconds=600)
        if complete:
            ledger.complete(outcome.lease, {"paid": key})


def test_ledger_keys_with_holders_and_history(app, auth_manager) -> None:  # noqa: F811
    _claimed("claim-1", "claims")
    _claimed("claim-2", "claims", complete=False, run_id="r2")
    _claimed("pay-1", "payments", namespace="payments")
    _claimed("manual-1", None)
    admin = _as(auth_manager, app, "admin")
    of_run = admin.get(f"{V1}/ledger/keys", params={"dag_id": "claims", "run_id": "r2"}).json()["keys"]
    assert [k["key"] for k in of_run] == ["claim-2"]
    assert admin.get(f"{V1}/ledger/namespaces").json() == ["default", "payments"]
    keys = admin.get(f"{V1}/ledger/keys").json()["keys"]
    assert [k["key"] for k in keys] == ["manual-1", "pay-1", "claim-2", "claim-1"]
    held = admin.get(f"{V1}/ledger/keys", params={"state": "in_progress"}).json()["keys"]
    assert [k["key"] for k in held] == ["claim-2"] and held[0]["holder"]["task_id"] == "pay"
    assert held[0]["lease_expires_at"] and held[0]["fencing_token"] == 1 and held[0]["dag_id"] == "claims"
    done = admin.get(f"{V1}/ledger/namespaces/default/keys/claim-1").json()
    assert done["state"] == "completed" and done["result_size"] > 0 and len(done["result_sha256"]) == 64
    assert [h["event"] for h in done["history"]] == ["claimed", "completed"]
    assert "result_json" not in done and "paid" not in json.dumps(done)
    reviewer = _as(auth_manager, app, "claims-reviewer")
    assert [k["key"] for k in reviewer.get(f"{V1}/ledger/keys").json()["keys"]] == ["claim-2", "claim-1"]
    assert reviewer.get(f"{V1}/ledger/namespaces/payments/keys/pay-1").status_code == 404
    assert reviewer.get(f"{V1}/ledger/namespaces/default/keys/manual-1").status_code == 404
    assert admin.get(f"{V1}/ledger/namespaces/default/keys/nope").status_code == 404


@pytest.mark.requirement("annex11.9", "part11.11.10g")
def test_release_needs_a_reason_and_the_right_and_is_audited_with_the_user(app, auth_manager) -> None:  # noqa: F811
    _claimed("claim-1", "claims")
    _claimed("claim-2", "claims", complete=False)
    _claimed("manual-1", None)
    body = {"namespace": "default", "key": "claim-1", "reason": "payment bounced; pay again"}
    viewer, reviewer, admin = (_as(auth_manager, app, n) for n in ("viewer", "claims-reviewer", "admin"))
    assert viewer.post(f"{V1}/ledger/release", json=body).status_code == 403
    assert reviewer.post(f"{V1}/ledger/release", json={**body, "reason": ""}).status_code == 422
    assert reviewer.post(f"{V1}/ledger/release", json={**body, "reason": "   "}).status_code == 422
    released = reviewer.post(f"{V1}/ledger/release", json=body)
    assert released.status_code == 200, released.text
    assert released.json()["released_by"] == "claims-reviewer" and released.json()["previous_state"] == "completed"
    entry = admin.get(f"{V1}/ledger/namespaces/default/keys/claim-1").json()
    assert entry["state"] == "released" and entry["history"][-1]["person"] == "claims-reviewer"
    assert entry["history"][-1]["reason"] == body["reason"]
    again = reviewer.post(f"{V1}/ledger/release", json=body)
    assert again.status_code == 409 and "already released" in again.json()["detail"]
    held = reviewer.post(f"{V1}/ledger/release", json={**body, "key": "claim-2"})
    assert held.status_code == 409 and "being worked on" in held.json()["detail"]
    assert reviewer.post(f"{V1}/ledger/release", json={**body, "key": "manual-1"}).status_code == 404
    assert (
        _as(auth_manager, app, "user").post(f"{V1}/ledger/release", json={**body, "key": "manual-1"}).status_code
        == 403
    )
    assert admin.post(f"{V1}/ledger/release", json={**body, "key": "manual-1"}).status_code == 200
    trail = admin.get(f"{V1}/events", params={"event_type": "idempotency.released"}).json()["events"]
    assert [(e["actor"], e["business_key"]) for e in trail] == [
        ("admin", "manual-1"),
        ("claims-reviewer", "claim-1"),
    ]
    assert trail[1]["details"]["reason"] == body["reason"] and trail[1]["details"]["state_before"] == "completed"
    refused = admin.get(f"{V1}/events", params={"event_type": "idempotency.release_refused"}).json()["events"]
    assert {e["business_key"] for e in refused} == {"claim-1", "claim-2"}
    assert all(e["actor"] == "claims-reviewer" and e["dag_id"] == "claims" for e in refused)
    mine = reviewer.get(f"{V1}/events", params={"event_type": "idempotency.released"}).json()["events"]
    assert [(e["business_key"], e["dag_id"]) for e in mine] == [("claim-1", "claims")]


def test_store_unreachable_is_503_naming_it(auth_manager, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", "postgresql://u:pw@127.0.0.1:9/integrity")
    response = _as(auth_manager, create_app(), "admin").get(f"{V1}/events")
    assert response.status_code == 503 and "integrity_default" in response.json()["detail"]


def test_error_budgets_show_what_the_checks_measured_and_the_counters_of_the_trail(app, auth_manager) -> None:  # noqa: F811
    from airflow_integrity.hooks.error_budgets import ErrorBudget, measure_budgets

    step = {"dag_id": "claims", "run_id": "r1", "task_id": "validate_claims", "try_number": 1}
    _record(event_type="validation.failed", actor="w@h", details={"rows": 200, "result_id": "x"}, **step)
    _record(event_type="validation.quarantined", actor="w@h", details={"bad_rows": 3, "good_rows": 197}, **step)
    budget = ErrorBudget("quarantined_rows", max_rate=0.005, task_id="validate_claims")
    (figure,) = measure_budgets(IntegrityCheckHook().get_store(), "claims", [budget])
    check = {**step, "task_id": "check_error_budgets"}
    _record(event_type="error_budget.measured", actor="w@h", details=figure.as_dict(), **check)

    admin = _as(auth_manager, app, "admin")
    report = admin.get(f"{V1}/dags/claims/errorBudgets").json()
    (shown,) = report["budgets"]
    assert (shown["name"], shown["count"], shown["total"], shown["breached"]) == (
        "validate_claims.quarantined_rows",
        3,
        200,
        True,
    )
    assert shown["rate"] == 0.015 and shown["measured_at"]
    assert report["tasks"]["validate_claims"] == {
        "failed_validations": 1,
        "quarantined_rows": 3,
        "rows": 200,
        "validations": 1,
    }
    assert report["tasks"]["(dag)"] == {"compensated_runs": 0, "runs": 1}
    # Only readers of the DAG see its budgets.
    assert _as(auth_manager, app, "claims-reviewer").get(f"{V1}/dags/payments/errorBudgets").status_code == 403
    assert _as(auth_manager, app, "claims-reviewer").get(f"{V1}/dags/claims/errorBudgets").status_code == 200
    assert admin.get(f"{V1}/dags/claims/errorBudgets", params={"since": "2999-01-01"}).status_code == 422
