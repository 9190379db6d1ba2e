"""An unreachable store never means an unaudited step silently ran: fail closed, or spool durably."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_integrity import audit
from airflow_integrity.hooks.integrity import AuditUnavailableError, IntegrityCheckHook
from airflow_integrity.store import IntegrityStore, StoreLocation
from airflow_integrity.store.audit.spool import AuditSpool

pytestmark = pytest.mark.integration
DOWN = "postgresql://u:pw@127.0.0.1:9/integrity"


def _types(url: str) -> list[tuple[str, str | None]]:
    from airflow_integrity.store.audit.export import iter_records

    store = IntegrityStore(StoreLocation.from_url(url))
    return [(r.event_type, r.business_key) for _, r in iter_records(store) if not isinstance(r, str)]


def test_fail_policy_raises_naming_the_store(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", DOWN)
    with pytest.raises(AuditUnavailableError) as err:
        audit.record("claim.approved", business_key="claim-1")
    assert "connection 'integrity_default'" in str(err.value)
    assert "127.0.0.1:9" in str(err.value)


def test_spool_policy_keeps_events_and_replays_them_in_order(store_url: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW__INTEGRITY__AUDIT_ON_STORE_ERROR", "spool")
    monkeypatch.setenv("AIRFLOW__INTEGRITY__SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", DOWN)
    for i in range(5):
        assert audit.record("claim.step", business_key=f"claim-{i}") is None
    assert AuditSpool(tmp_path / "spool").pending() == 5

    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
    stored = audit.record("claim.step", business_key="claim-5")
    assert stored is not None
    assert _types(store_url) == [("claim.step", f"claim-{i}") for i in range(6)]
    assert AuditSpool(tmp_path / "spool").pending() == 0
    # Draining again appends nothing twice.
    assert IntegrityCheckHook().drain_spool().moved == 0
    assert len(_types(store_url)) == 6
    from airflow_integrity.store.audit.verify import verify

    result = verify(IntegrityStore(StoreLocation.from_url(store_url)))
    assert result.ok and result.count == 6, result


def test_fail_policy_stops_a_real_task_before_its_code_runs(
    airflow_db, tmp_path: Path, monkeypatch, capfd
) -> None:
    from tests.dag_runs import load_fixture_dag

    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", DOWN)
    monkeypatch.setenv("INTEGRITY_TEST_EFFECT_DIR", str(tmp_path))
    run = load_fixture_dag("audit_policy").test()
    (ti,) = run.get_task_instances()
    assert run.state == "failed" and ti.state == "failed"
    assert not (tmp_path / "effect.txt").exists(), "the task ran unaudited"
    output = capfd.readouterr()
    message = next(line for line in (output.out + output.err).splitlines() if "could not be recorded" in line)
    assert "connection 'integrity_default'" in message and "audit_on_store_error" in message


def test_spool_policy_lets_a_real_task_run_and_its_events_arrive_later_in_order(
    airflow_db, store_url: str, tmp_path: Path, monkeypatch
) -> None:
    from airflow_integrity.store.audit.verify import verify
    from tests.dag_runs import load_fixture_dag

    spool = tmp_path / "spool"
    monkeypatch.setenv("AIRFLOW__INTEGRITY__AUDIT_ON_STORE_ERROR", "spool")
    monkeypatch.setenv("AIRFLOW__INTEGRITY__SPOOL_DIR", str(spool))
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", DOWN)
    monkeypatch.setenv("INTEGRITY_TEST_EFFECT_DIR", str(tmp_path))
    run = load_fixture_dag("audit_policy").test()
    assert run.state == "success" and (tmp_path / "effect.txt").exists()
    waiting = AuditSpool(spool).pending()
    assert waiting >= 3  # task running and success, dag run success

    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
    assert IntegrityCheckHook().drain_spool().replayed == waiting
    kinds = [kind for kind, _ in _types(store_url)]
    assert kinds.index("task_instance.running") < kinds.index("task_instance.success")
    assert kinds[-1] == "dag_run.success"
    assert verify(IntegrityStore(StoreLocation.from_url(store_url))).ok


def _break_audit_inserts(url: str) -> None:
    """A store whose database refuses every audit insert (as a broken procedure or constraint would)."""
    from sqlalchemy import text

    store = IntegrityStore(StoreLocation.from_url(url))
    store.migrate()
    with store.begin() as conn:
        if store.backend == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION test_broken() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "RAISE EXCEPTION 'audit inserts are broken'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER test_broken BEFORE INSERT ON integrity_audit_intake "
                    "FOR EACH ROW EXECUTE FUNCTION test_broken()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER test_broken BEFORE INSERT ON integrity_audit_event "
                    "BEGIN SELECT RAISE(ABORT, 'audit inserts are broken'); END"
                )
            )
    store.engine.dispose()


@pytest.mark.parametrize("cause", ["connection type", "schema not current", "refused statement"])
def test_fail_policy_refuses_a_task_whose_start_cannot_be_recorded_for_any_reason(
    airflow_db, store_url: str, tmp_path: Path, monkeypatch, capfd, cause: str
) -> None:
    from tests.dag_runs import load_fixture_dag

    if cause == "connection type":
        monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", "http://integrity.internal:8080")
        expected = "is not a supported integrity store"
    elif cause == "schema not current":
        from airflow_integrity.store import migrate

        migrate.upgrade(IntegrityStore(StoreLocation.from_url(store_url)).engine, revision="0001")
        monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
        monkeypatch.setenv("AIRFLOW__INTEGRITY__AUTO_MIGRATE", "False")
        expected = "Run `airflow integrity db migrate`"
    else:
        _break_audit_inserts(store_url)
        monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
        expected = "audit inserts are broken"
    monkeypatch.setenv("INTEGRITY_TEST_EFFECT_DIR", str(tmp_path))
    run = load_fixture_dag("audit_policy").test()
    (ti,) = run.get_task_instances()
    assert run.state == "failed" and ti.state == "failed"
    assert not (tmp_path / "effect.txt").exists(), "the task ran unaudited"
    output = capfd.readouterr()
    refusal = [line for line in (output.out + output.err).splitlines() if "does not run unaudited" in line]
    assert refusal and expected in refusal[0], output


def test_an_end_event_the_store_cannot_take_is_spooled_whatever_the_policy(store_url: str, monkeypatch) -> None:
    from types import SimpleNamespace

    from airflow_integrity.listeners import task_instance_listener
    from airflow_integrity.settings import load_settings

    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", DOWN)
    assert load_settings().audit_on_store_error == "fail"
    ti = SimpleNamespace(
        dag_id="claims", run_id="manual__1", task_id="pay", map_index=-1, try_number=1, state="success"
    )
    task_instance_listener.on_task_instance_success(previous_state="running", task_instance=ti)
    spool = AuditSpool(load_settings().spool_dir)
    assert spool.pending() == 1  # the task has run: its end is kept, not dropped

    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
    assert IntegrityCheckHook().drain_spool().replayed == 1
    assert _types(store_url) == [("task_instance.success", None)]


def test_several_events_at_once_follow_the_same_policy(store_url: str, tmp_path: Path, monkeypatch) -> None:
    """``record_events`` (the completeness check's gap events): refused under ``fail``, spooled when their steps
    already happened (``keep``), replayed once and in order when the store is back."""
    from airflow_integrity.store.audit.event import AuditEvent

    monkeypatch.setenv("AIRFLOW__INTEGRITY__SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", DOWN)
    events = [
        AuditEvent(event_type="task_instance.skipped", actor="scheduler@h", business_key=f"k-{i}")
        for i in range(3)
    ]
    with pytest.raises(AuditUnavailableError, match=r"^3 audit events could not be recorded .*127\.0\.0\.1:9"):
        IntegrityCheckHook().record_events(events)
    assert AuditSpool(tmp_path / "spool").pending() == 0

    assert IntegrityCheckHook().record_events(events, keep=True) == 0
    assert AuditSpool(tmp_path / "spool").pending() == 3

    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
    assert IntegrityCheckHook().drain_spool().moved == 3
    assert IntegrityCheckHook().drain_spool().moved == 0
    assert _types(store_url) == [("task_instance.skipped", f"k-{i}") for i in range(3)]
