"""Every example DAG of ``dags/`` on a real cluster, as `make run` runs them: the demo services started the same
way, each DAG triggered over REST with its defaults, each approval answered over REST.

Each run succeeds, or waits for its approval and succeeds once approved. A loan the underwriter rejects ends
with its reservation released by the compensation, once; the trail holds the underwriter's signature and
verifies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.verify import verify
from tests.demo_services import call, demo_services
from tests.e2e.approvals import answer_approval
from tests.e2e.conftest import ClusterFactory, E2EPostgres

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
# DAG -> the approval task it waits on (None: it runs through).
EXAMPLES = {
    "integrity_store_check": None,
    "claims_payment": None,
    "claim_review": "approve_payment",
    "patient_intake": None,
    "order_to_cash": None,
    "loan_origination": "underwriter_decision",
}


@pytest.mark.requirement("part11.11.10f")
def test_every_example_dag_runs_out_of_the_box_and_a_rejected_loan_releases_its_reservation(
    airflow_cluster_factory: ClusterFactory, e2e_pg: E2EPostgres, tmp_path: Path
) -> None:
    assert {p.stem for p in (REPO / "dags").glob("*.py")} == set(EXAMPLES)
    store_uri = f"sqlite:///{tmp_path / 'integrity.db'}"  # `make run`'s embedded store
    with demo_services() as (url, connections):
        cluster = airflow_cluster_factory(
            REPO / "dags", env={"AIRFLOW_CONN_INTEGRITY_DEFAULT": store_uri, **connections}
        )
        with cluster:
            for dag_id in EXAMPLES:
                cluster.wait_for_dag(dag_id, timeout=180)
            runs = {dag_id: cluster.trigger(dag_id) for dag_id in EXAMPLES}
            rejected = cluster.trigger("loan_origination", conf={"application_id": "APP-502", "amount": 90000.0})
            for dag_id, approval in EXAMPLES.items():
                if approval is not None:
                    answer_approval(cluster, dag_id, runs[dag_id], approval, ["Approve"])
            answer_approval(cluster, "loan_origination", rejected, "underwriter_decision", ["Reject"])
            states = {dag_id: cluster.wait_for_run(dag_id, run_id, timeout=300) for dag_id, run_id in runs.items()}
            rejected_state = cluster.wait_for_run("loan_origination", rejected, timeout=300)
            rejected_tasks = {
                ti["task_id"]: ti["state"] for ti in cluster.task_instances("loan_origination", rejected)
            }
            logs = cluster.logs_tail()
        done = call(url, "/stats")["done"]

    assert states == dict.fromkeys(EXAMPLES, "success"), logs
    # A rejection is a person's decision, not a failure: the run succeeds, skips the payout, and its
    # compensation releases what was reserved.
    assert rejected_state == "success", logs
    assert (rejected_tasks["disburse"], rejected_tasks["compensate"]) == ("skipped", "success"), rejected_tasks
    assert done == {
        "/payments/payments": 2,  # claims_payment, order_to_cash's capture
        "/erp/invoices": 1,
        "/bureau-a/checks": 3,  # order_to_cash, two loans
        "/lender/reservations": 2,
        "/lender/disbursements": 1,  # only the approved loan
        "/lender/releases": 1,  # only the rejected one
        "/payer/eligibility": 1,  # patient_intake's one inquiry
    }, done

    store = IntegrityStore(StoreLocation.from_url(store_uri))
    try:
        AuditLog(store).chain_pending()
        story = [
            (r.event_type, (r.details.get("signature") or {}).get("meaning"))
            for _, r in iter_records(store, business_key="loan-APP-502")
            if not isinstance(r, str) and r.event_type in ("approval.signed", "compensation.completed")
        ]
        assert story == [("approval.signed", "rejection"), ("compensation.completed", None)], story
        result = verify(store)
        assert result.ok, result.summary()
    finally:
        store.engine.dispose()
