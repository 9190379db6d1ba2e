"""Error budgets measured from the trail across runs, on real stores: within budget, then breached."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from airflow_integrity.hooks.error_budgets import ErrorBudget
from airflow_integrity.store import IntegrityStore, StoreLocation
from tests.airflow_versions import integrity_cli
from tests.dag_runs import FIXTURES, load_fixture_dag

pytestmark = pytest.mark.integration


def _events(url: str, event_type: str) -> list[dict]:
    from airflow_integrity.store.audit.chain import AuditLog
    from airflow_integrity.store.audit.query import EventFilter, stream

    store = IntegrityStore(StoreLocation.from_url(url))
    try:
        AuditLog(store).chain_pending()
        return [r.record.details for r in stream(store, EventFilter(event_type=event_type)) if r.record]
    finally:
        store.engine.dispose()


def test_a_quarantine_rate_above_its_budget_records_the_breach_and_fails_the_check(
    airflow_db, store_conn_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState

    monkeypatch.setenv("AIRFLOW__INTEGRITY__QUARANTINE_DIR", str(tmp_path / "quarantine"))
    dag = load_fixture_dag("budgeted_rows")
    within = dag.test(run_conf={"bad": 1})  # 1 of 4 rows quarantined: 25 %
    breached = dag.test(run_conf={"bad": 3})  # 4 of 8 across both runs: 50 %

    assert within.state == DagRunState.SUCCESS  # the failed validation only warns
    assert breached.state == DagRunState.FAILED
    states = {ti.task_id: ti.state for ti in breached.get_task_instances()}
    assert (states["validate_rows"], states["check_error_budgets"]) == ("success", "failed")
    assert states["compensate"] == "skipped"  # a breached budget is a finding, not a failed step

    measured = _events(store_conn_env, "error_budget.measured")
    figures = [(m["name"], m["count"], m["total"], m["breached"]) for m in measured]
    assert figures == [
        ("validate_rows.quarantined_rows", 1, 4, False),
        ("validate_rows.failed_validations", 1, 1, True),
        ("validate_rows.quarantined_rows", 4, 8, True),
        ("validate_rows.failed_validations", 2, 2, True),
    ]
    assert measured[2]["rate"] == 0.5 and measured[2]["max_rate"] == 0.30 and measured[2]["on_breach"] == "fail"
    breaches = [(b["name"], b["count"]) for b in _events(store_conn_env, "error_budget.breached")]
    assert breaches == [
        ("validate_rows.failed_validations", 1),
        ("validate_rows.quarantined_rows", 4),
        ("validate_rows.failed_validations", 2),
    ]

    # The same figures on the command line, from the DAG's declaration and the trail; exit 1 on a breach.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_") or k.endswith("INTEGRITY_DEFAULT")
    }
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(FIXTURES)
    done = subprocess.run(
        [*integrity_cli(), "report", "budgeted_rows", "--since", "1d", "--json"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert [(b["name"], b["count"], b["total"], b["breached"]) for b in report["budgets"]] == [
        ("validate_rows.quarantined_rows", 4, 8, True),
        ("validate_rows.failed_validations", 2, 2, True),
    ]
    assert report["tasks"]["validate_rows"] == {
        "failed_validations": 2,
        "quarantined_rows": 4,
        "rows": 8,
        "validations": 2,
    }
    assert report["tasks"]["(dag)"]["runs"] == 2
    unknown = subprocess.run(
        [*integrity_cli(), "report", "budgeted_rowz"], env=env, capture_output=True, text=True, timeout=180
    )
    assert unknown.returncode == 2 and "no DAG 'budgeted_rowz'" in unknown.stderr, unknown.stderr


def test_a_budget_declared_wrong_is_refused_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="unknown measure; use one of quarantined_rows"):
        ErrorBudget("quarantine_rate", max_rate=0.01, task_id="t")
    with pytest.raises(ValueError, match="max_rate=5 must be a fraction"):
        ErrorBudget("fallbacks", max_rate=5, task_id="t")
    with pytest.raises(ValueError, match="compensated_runs names no task"):
        ErrorBudget("compensated_runs", max_rate=0.01, task_id="t")
    with pytest.raises(ValueError, match="fallbacks needs task_id="):
        ErrorBudget("fallbacks", max_rate=0.01)


def test_a_release_made_on_the_command_line_counts_for_the_task_that_completed_the_key(
    store, store_conn_env: str, tmp_path: Path
) -> None:
    from airflow_integrity.hooks.error_budgets import measure_budgets
    from airflow_integrity.hooks.idempotency import IdempotencyGuard
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.store.audit.event import AuditEvent
    from airflow_integrity.store.ledger.codec import inputs_digest

    step = {"dag_id": "budget_dag", "run_id": "r1", "task_id": "post", "try_number": 1}
    for n in range(4):  # four effects of the task, as its runs recorded them
        key = f"post-{n}"
        IdempotencyGuard(
            key=key, fingerprint=inputs_digest({"n": n}), namespace="budgets", holder={**step, "map_index": -1}
        ).run(lambda claim: {"posted": claim.key})
        IntegrityCheckHook().record_event(
            AuditEvent("idempotency.completed", "w@h", details={"namespace": "budgets", "key": key}, **step)
        )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_") or k.endswith("INTEGRITY_DEFAULT")
    }
    release = ["ledger", "release", "post-2", "--namespace", "budgets", "--reason", "redo", "--user", "qa"]
    done = subprocess.run([*integrity_cli(), *release], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr

    (figure,) = measure_budgets(store, "budget_dag", [ErrorBudget("releases", max_rate=0.2, task_id="post")])
    assert (figure.count, figure.total, figure.breached) == (1, 4, True)
