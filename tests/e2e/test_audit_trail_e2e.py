"""The audit trail on a real cluster: an approval over REST, killed task processes, export and verify.

One cluster runs the ``claim_review`` example DAG (a reviewer approves the payment through the REST API)
and a DAG whose task processes the test kills with SIGKILL. Afterwards every task-instance state change
that Airflow itself recorded (``/tries``) has its event, the approval carries the reviewer's electronic
signature, the claim's story is exported with the real CLI and verifies, and the scheduler has signed a
periodic checkpoint that the key verifies.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.export import iter_records
from airflow_integrity.store.audit.signing import CheckpointKey
from airflow_integrity.store.audit.verify import verify
from tests.e2e.approvals import answer_approval
from tests.e2e.conftest import ClusterFactory, E2EPostgres
from tests.e2e.harness import poll_until

REPO = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "e2e-signing-secret-0123456789abcdef"
TERMINAL = {"success", "failed", "up_for_retry", "skipped", "upstream_failed"}


def _dags_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    shutil.copy(REPO / "dags" / "claim_review.py", folder)
    shutil.copy(Path(__file__).parent / "dags" / "audit_killed_tasks.py", folder)
    return folder


def _kill_when_announced(folder: Path, name: str) -> int:
    pid_file = folder / f"{name}.1.pid"
    poll_until(lambda: pid_file.exists() or None, timeout=120, describe=lambda: f"{name} never started")
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.requirement("annex11.14", "part11.11.10e", "part11.11.70")
@pytest.mark.e2e
def test_approvals_killed_tasks_and_the_claims_story_are_on_a_verifiable_trail(
    airflow_cluster_factory: ClusterFactory, e2e_pg: E2EPostgres, tmp_path: Path
) -> None:
    store_uri = e2e_pg.create_database("store")
    shared = tmp_path / "shared"
    shared.mkdir()
    env = {
        "AIRFLOW_CONN_INTEGRITY_DEFAULT": store_uri,
        "AIRFLOW_CONN_AUDIT_SIGNING_KEY": json.dumps({"conn_type": "generic", "password": SIGNING_SECRET}),
        "AIRFLOW__INTEGRITY__CHECKPOINT_KEY_CONN_ID": "audit_signing_key",
        "AIRFLOW__INTEGRITY__CHECKPOINT_INTERVAL": "0",
        # A killed try that will be retried is failed by the scheduler: at once when the executor reports the
        # workload ended while the task is still running, at the latest when its heartbeat is missing.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        "INTEGRITY_E2E_DIR": str(shared),
    }
    cluster = airflow_cluster_factory(_dags_folder(tmp_path), env=env)
    with cluster:
        cluster.wait_for_dag("claim_review", timeout=120)
        cluster.wait_for_dag("audit_killed_tasks", timeout=120)
        claim_run = cluster.trigger("claim_review", conf={"claim_id": 42, "amount": 1250.0, "member_id": "M-7"})
        kill_run = cluster.trigger("audit_killed_tasks")

        _kill_when_announced(shared, "killed_then_retried")
        _kill_when_announced(shared, "killed_for_good")

        answer = answer_approval(cluster, "claim_review", claim_run, "approve_payment", ["Approve"])
        claim_state = cluster.wait_for_run("claim_review", claim_run, timeout=180)
        kill_state = cluster.wait_for_run("audit_killed_tasks", kill_run, timeout=180)
        airflow_tries = {
            (dag_id, run_id, ti["task_id"]): cluster.tries(dag_id, run_id, ti["task_id"])
            for dag_id, run_id in (("claim_review", claim_run), ("audit_killed_tasks", kill_run))
            for ti in cluster.task_instances(dag_id, run_id)
        }
        export_file = tmp_path / "claim-42.jsonl"
        exported = cluster.airflow_cli(
            "integrity", "audit", "export", "--business-key", "claim-42", "--output", str(export_file)
        )
        logs = cluster.logs_tail()

    assert claim_state == "success", logs
    assert kill_state == "failed", logs  # killed_for_good has no retry
    store = IntegrityStore(StoreLocation.from_url(store_uri))
    events = [record for _, record in iter_records(store) if not isinstance(record, str)]

    # Every try Airflow recorded has its events: running, and the state it ended in.
    for (dag_id, run_id, task_id), tries in airflow_tries.items():
        for attempt in tries:
            mine = [
                e.event_type
                for e in events
                if (e.dag_id, e.run_id, e.task_id, e.try_number)
                == (dag_id, run_id, task_id, attempt["try_number"])
            ]
            assert "task_instance.running" in mine, (task_id, attempt, mine)
            if attempt["state"] in TERMINAL:
                # Airflow's history keeps a retried try as "failed"; its event says up_for_retry.
                expected = {f"task_instance.{attempt['state']}"}
                if attempt["state"] == "failed":
                    expected.add("task_instance.up_for_retry")
                assert expected & set(mine), (task_id, attempt, mine)

    def ended(task_id: str, try_number: int) -> Any:
        return next(
            e
            for e in events
            if e.task_id == task_id and e.try_number == try_number and e.event_type != "task_instance.running"
        )

    # The killed try to be retried was failed by the scheduler; the one without retry was reported by its
    # supervisor through the API server; the retry then succeeded in a worker.
    retried = ended("killed_then_retried", 1)
    assert retried.event_type == "task_instance.up_for_retry" and retried.actor.startswith("scheduler@"), retried
    for_good = ended("killed_for_good", 1)
    assert for_good.event_type == "task_instance.failed" and for_good.actor.startswith("api-server@"), for_good
    assert for_good.details["reported_by"] == "supervisor"
    assert ended("killed_then_retried", 2).event_type == "task_instance.success"

    # The reviewer's electronic signature: printed name, date and time, meaning.
    (approval,) = [e for e in events if e.event_type == "approval.signed"]
    signature = approval.details["signature"]
    assert approval.actor == cluster.username and approval.run_id == claim_run
    assert signature["printed_name"] == answer["responded_by"]["name"] == cluster.username
    assert signature["meaning"] == "approval" and approval.details["chosen_options"] == ["Approve"]
    assert signature["signed_at"][:19] == answer["responded_at"][:19]
    assert "claim 42" in approval.details["subject"]

    # The claim's story, exported by the real CLI, verified, in order, and nothing of the other DAG.
    assert exported.returncode == 0, exported.stderr
    header, *story, end = [json.loads(line) for line in export_file.read_text().splitlines()]
    assert header["verified"] is True and end["verified"] is True
    kinds = [e["event_type"] for e in story]
    for kind in (
        "claim.received",
        "claim.assessed",
        "approval.signed",
        "claim.payment_released",
        "dag_run.success",
    ):
        assert kind in kinds, kinds
    assert kinds.index("claim.assessed") < kinds.index("approval.signed") < kinds.index("claim.payment_released")
    assert {e["dag_id"] for e in story} == {"claim_review"}
    assert [e["seq"] for e in story] == sorted(e["seq"] for e in story)

    # The whole chain verifies, including the checkpoint the scheduler signed on its own.
    result = verify(store, key=CheckpointKey.hmac_sha256(SIGNING_SECRET))
    assert result.ok, result.summary()
    assert result.signatures_checked and result.checkpoints >= 1, result.summary()
