"""Idempotent triggering through Airflow's own API app (plugins loaded from the entry point, the metadata DB,
Airflow's trigger route), with concurrent duplicates from threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from tests.airflow_versions import dag_bag_module
from tests.plugin.api_support import auth_manager, login  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
DAG_ID = "integrity_store_check"
ROUTE = f"/integrity/api/v1/dags/{DAG_ID}/dagRuns"


@pytest.fixture
def airflow_app(store_conn_env: str, auth_manager):  # noqa: F811
    """Airflow's API app with the example DAGs in its metadata database."""
    from airflow.api_fastapi.app import create_app
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    dagbag = dag_bag_module()
    DagBag, sync_bag_to_db = dagbag.DagBag, dagbag.sync_bag_to_db
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from airflow_integrity.store import IntegrityStore, StoreLocation
    from tests.dag_runs import EXAMPLES

    IntegrityStore(StoreLocation.from_url(store_conn_env, source="test")).migrate()
    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(EXAMPLES), bundle_path=EXAMPLES, bundle_name="dags-folder")
    sync_bag_to_db(bag, "dags-folder", None)
    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id == DAG_ID).delete()
    return create_app(apps="core")


def _runs() -> list[str]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return [r.run_id for r in session.query(DagRun).filter(DagRun.dag_id == DAG_ID)]


def _trigger(client: Any, key: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(
        ROUTE, headers={"Idempotency-Key": key}, json=body or {"logical_date": None, "conf": {"n": 1}}
    )


def test_the_same_key_gives_the_same_run_and_another_body_is_refused(airflow_app, auth_manager) -> None:  # noqa: F811
    client = login(auth_manager, airflow_app, "user")
    first = _trigger(client, "claim-42-submit")
    assert first.status_code == 200, first.text
    assert first.headers["Idempotent-Replayed"] == "false"
    run_id = first.json()["dag_run_id"]
    assert run_id.startswith("manual__idempotent_") and first.json()["conf"] == {"n": 1}
    again = _trigger(client, "claim-42-submit")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["dag_run_id"] == run_id and _runs() == [run_id]

    other = _trigger(client, "claim-42-submit", {"logical_date": None, "conf": {"n": 2}})
    assert other.status_code == 422
    detail = other.json()["detail"]
    assert detail["stored_fingerprint"] != detail["request_fingerprint"]
    assert detail["stored_fingerprint"].startswith("sha256:") or len(detail["stored_fingerprint"]) >= 64
    assert _runs() == [run_id]

    second = _trigger(client, "claim-43-submit")
    assert second.status_code == 200 and second.json()["dag_run_id"] != run_id
    assert sorted(_runs()) == sorted([run_id, second.json()["dag_run_id"]])
    assert second.json()["triggering_user_name"] == "user"


def test_concurrent_duplicates_make_one_run(airflow_app, auth_manager) -> None:  # noqa: F811
    answers: list[Any] = []
    start = threading.Barrier(6)

    def call() -> None:
        client = login(auth_manager, airflow_app, "user")
        start.wait()
        answers.append(_trigger(client, "same-key-at-once"))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert len({a.json()["dag_run_id"] for a in answers}) == 1
    assert sorted(a.headers["Idempotent-Replayed"] for a in answers) == ["false"] + ["true"] * 5
    assert len(_runs()) == 1


@pytest.mark.requirement("part11.11.10g")
def test_airflows_refusals_pass_through_and_leave_the_key_retryable(airflow_app, auth_manager) -> None:  # noqa: F811
    viewer = login(auth_manager, airflow_app, "viewer")
    assert _trigger(viewer, "k-viewer").status_code == 403
    user = login(auth_manager, airflow_app, "user")
    missing = user.post(
        "/integrity/api/v1/dags/no_such_dag/dagRuns",
        headers={"Idempotency-Key": "k1"},
        json={"logical_date": None},
    )
    assert missing.status_code == 404
    bad = _trigger(user, "k-bad", {"logical_date": "not a date"})
    assert bad.status_code in (400, 422) and _runs() == []
    # The same call again is tried again (and refused again), not replayed as a success.
    assert _trigger(user, "k-bad", {"logical_date": "not a date"}).status_code == bad.status_code
    assert user.post(ROUTE, json={"logical_date": None}).status_code == 422  # no Idempotency-Key
    assert user.post(ROUTE, headers={"Idempotency-Key": "k2"}, content=b"[1]").status_code == 400
    # A run id the client names and that already exists is Airflow's 409, passed on.
    named = {"logical_date": None, "dag_run_id": "named-run"}
    assert _trigger(user, "k-named", named).status_code == 200
    assert _trigger(user, "k-other", named).status_code == 409


@pytest.mark.requirement("alcoa.attributable")
def test_each_decision_is_audited_with_the_user(airflow_app, auth_manager, store_conn_env) -> None:  # noqa: F811
    from airflow_integrity.store.audit.chain import AuditLog
    from airflow_integrity.store.audit.export import iter_records

    client = login(auth_manager, airflow_app, "user")
    _trigger(client, "audited-key")
    _trigger(client, "audited-key")
    _trigger(client, "audited-key", {"logical_date": None, "conf": {"n": 3}})
    store = IntegrityCheckHook().get_store()
    AuditLog(store).chain_pending()
    events = [r for _, r in iter_records(store, business_key="audited-key", with_runs=False)]
    decisions = [(e.event_type, e.actor) for e in events if e.event_type.startswith("idempotency.")]
    assert ("idempotency.claimed", "user") in decisions
    assert ("idempotency.completed", "user") in decisions
    assert ("idempotency.replayed", "user") in decisions
    assert ("idempotency.fingerprint_mismatch", "user") in decisions
    assert {e.dag_id for e in events} == {DAG_ID}  # readable by whoever may read the DAG
