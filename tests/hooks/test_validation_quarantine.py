"""Where quarantined rows go: a location from DAG code or ``[integrity] quarantine_dir``, never from a run's conf
unless the DAG's author allows it; one new file per validation (run, task, try), never overwritten."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG

from airflow_integrity.compat import AirflowFailException
from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.hooks.validation import enforce, write_new_file
from airflow_integrity.operators.validate import ValidateDataOperator, quarantine_location
from tests.hooks.validation_helpers import ROWS, SUITE

pytestmark = pytest.mark.integration


def _quarantine(hook: IntegrityCheckHook, location=None):  # type: ignore[no-untyped-def]
    run = hook.validate_data(ROWS, SUITE, collect_unexpected_rows=True)
    handoff = enforce(hook, run, on_failure="quarantine", quarantine_path=location, max_unexpected_fraction=0.5)
    assert handoff.quarantine is not None
    return Path(handoff.quarantine["path"])


def test_every_validation_writes_a_new_owner_only_file(store_conn_env: str, tmp_path) -> None:
    hook = IntegrityCheckHook()
    first, second = _quarantine(hook, str(tmp_path / "q")), _quarantine(hook, str(tmp_path / "q"))
    assert first != second and first.parent == second.parent == tmp_path / "q"
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == sorted([first.name, second.name])
    assert first.stat().st_mode & 0o077 == 0 and (tmp_path / "q").stat().st_mode & 0o077 == 0


def test_an_existing_file_is_never_overwritten(tmp_path) -> None:
    target = tmp_path / "q" / "rows.csv"
    write_new_file(target, b"first")
    with pytest.raises(FileExistsError, match=r"rows\.csv already exists; quarantine files are never overwritten"):
        write_new_file(target, b"second")
    assert target.read_bytes() == b"first"


def test_without_a_path_the_configured_folder_and_by_default_one_under_airflow_home(
    store_conn_env: str, tmp_path, monkeypatch
) -> None:
    hook = IntegrityCheckHook()
    monkeypatch.setenv("AIRFLOW__INTEGRITY__QUARANTINE_DIR", str(tmp_path / "configured"))
    assert _quarantine(hook).parent == tmp_path / "configured"
    monkeypatch.delenv("AIRFLOW__INTEGRITY__QUARANTINE_DIR")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert _quarantine(hook).parent == tmp_path / "home" / "quarantine"


def test_a_file_name_is_refused_naming_the_argument_and_the_fix(store_conn_env: str, tmp_path) -> None:
    hook = IntegrityCheckHook()
    with pytest.raises(ValueError, match=r"quarantine_path='.*rejected\.csv' names a file.*quarantine_format="):
        _quarantine(hook, str(tmp_path / "rejected.csv"))
    with pytest.raises(ValueError, match=r"quarantine_path='q/rejected\.jsonl' names a file"):
        ValidateDataOperator(
            task_id="v", data=ROWS, suite=SUITE, on_failure="quarantine", quarantine_path="q/rejected.jsonl"
        )


def _operator(template: str, **kwargs) -> ValidateDataOperator:  # type: ignore[no-untyped-def]
    with DAG("quarantine_params", schedule=None, params={"where": "/srv/quarantine", "batch": "b1"}):
        return ValidateDataOperator(
            task_id="v", data=ROWS, suite=SUITE, on_failure="quarantine", quarantine_path=template, **kwargs
        )


def _context(conf: dict) -> dict:
    params = {"where": "/srv/quarantine", "batch": "b1", **conf}
    return {"params": params, "dag_run": SimpleNamespace(conf=conf)}


@pytest.mark.parametrize(
    "template",
    [
        "{{ params.where }}",
        "{{ params['where'] }}/{{ ds }}",
        "{{ params.get('where') }}",
        "{% for k, v in params.items() %}{{ v }}{% endfor %}",
    ],
)
def test_a_location_the_run_conf_changed_is_refused(template: str) -> None:
    operator = _operator(template)
    # The DAG's own params (what a trigger form sends back unchanged) are DAG code: accepted.
    assert quarantine_location(operator, "/srv/quarantine", _context({"where": "/srv/quarantine"})) == (
        "/srv/quarantine"
    )
    with pytest.raises(AirflowFailException) as refused:
        quarantine_location(operator, "/tmp/anywhere", _context({"where": "/tmp/anywhere"}))
    message = str(refused.value)
    assert "quarantine_path" in message and "'where'" in message and "task 'v'" in message
    assert "allow_quarantine_path_from_conf=True" in message and "[integrity] quarantine_dir" in message


def test_dag_run_conf_in_the_template_is_refused_and_the_author_may_opt_in() -> None:
    template = "{{ dag_run.conf.get('where', '/srv/quarantine') }}"
    with pytest.raises(AirflowFailException, match=r"dag_run\.conf"):
        quarantine_location(_operator(template), "/srv/quarantine", _context({}))
    # A param the conf did not change, and other template variables, are fine.
    assert quarantine_location(_operator("/srv/q/{{ params.batch }}"), "/srv/q/b1", _context({"where": "x"})) == (
        "/srv/q/b1"
    )
    assert (
        quarantine_location(_operator("/srv/q/{{ dag_run.run_id }}"), "/srv/q/r", _context({"x": 1})) == "/srv/q/r"
    )
    allowed = _operator("{{ params.where }}", allow_quarantine_path_from_conf=True)
    assert quarantine_location(allowed, "/tmp/anywhere", _context({"where": "/tmp/anywhere"})) == "/tmp/anywhere"
