"""ValidatedDataTrigger: serialises to exactly its arguments; run() waits until the data passes, or times out
naming the last failure; each check on data is a stored, audited validation attributed to the waiting task."""

from __future__ import annotations

import asyncio
import time

import pandas as pd
import pytest

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.hooks.source_arguments import source_from_arguments
from airflow_integrity.triggers.validated_data import ValidatedDataTrigger
from tests.hooks.validation_helpers import ROWS, SUITE, events

pytestmark = pytest.mark.integration
IDENTITY = {
    "dag_id": "intake",
    "run_id": "manual__1",
    "task_id": "wait_for_patients",
    "map_index": -1,
    "try_number": 1,
}


def _trigger(path, **overrides) -> ValidatedDataTrigger:
    source = source_from_arguments(path=str(path))
    assert source is not None
    arguments = {
        "source": source.serialize(),
        "suite": SUITE,
        "poke_interval": 0.2,
        "timeout_at": None,
        "integrity_conn_id": None,
        "task_identity": IDENTITY,
        "business_key": "intake-1",
        "options": {"allow_empty": False},
    }
    return ValidatedDataTrigger(**{**arguments, **overrides})


def _first_event(trigger: ValidatedDataTrigger, *, meanwhile=None):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        helper = asyncio.create_task(meanwhile()) if meanwhile is not None else None
        async for event in trigger.run():
            if helper is not None:
                await helper
            return event.payload
        return None

    return asyncio.run(main())


@pytest.mark.unit
def test_serialize_returns_the_classpath_and_every_argument(tmp_path) -> None:
    trigger = _trigger(tmp_path / "patients.csv", timeout_at=1_900_000_000.0)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_integrity.triggers.validated_data.ValidatedDataTrigger"
    assert kwargs == {
        "source": {"kind": "path", "path": str(tmp_path / "patients.csv")},
        "suite": SUITE,
        "poke_interval": 0.2,
        "timeout_at": 1_900_000_000.0,
        "integrity_conn_id": None,
        "task_identity": IDENTITY,
        "business_key": "intake-1",
        "options": {"allow_empty": False},
    }
    assert ValidatedDataTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_waits_until_the_file_holds_valid_data(tmp_path, monkeypatch) -> None:
    store_url = f"sqlite:///{tmp_path / 'integrity.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", store_url)
    path = tmp_path / "patients.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)  # p2 fails for now
    good = pd.DataFrame([ROWS[0]])

    IntegrityCheckHook().get_store()  # migrated, so the audit trail can be watched
    deadline = time.monotonic() + 120

    async def fix_the_data_after_a_failed_check() -> None:
        while not await asyncio.to_thread(events, store_url, "validation.failed"):
            assert time.monotonic() < deadline, "the trigger never validated the failing data"
            await asyncio.sleep(0.05)
        good.to_csv(path, index=False)

    payload = _first_event(
        _trigger(path, timeout_at=time.time() + 120), meanwhile=fix_the_data_after_a_failed_check
    )

    assert payload["status"] == "success" and payload["checks"] >= 2
    assert payload["summary"]["status"] == "passed" and payload["summary"]["data"]["rows"] == 1
    recorded = [e for e in events(store_url) if e.event_type.startswith("validation.")]
    assert [e.event_type for e in recorded][-1] == "validation.passed"
    assert {e.event_type for e in recorded[:-1]} == {"validation.failed"}
    assert all((e.dag_id, e.run_id, e.task_id) == ("intake", "manual__1", "wait_for_patients") for e in recorded)


def test_times_out_with_the_last_failure(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{tmp_path / 'integrity.db'}")
    missing = _first_event(_trigger(tmp_path / "never.csv", timeout_at=time.time() + 0.5))
    assert missing["status"] == "timeout" and "does not exist" in missing["last_failure"]
    assert missing["result_id"] is None

    path = tmp_path / "patients.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    failing = _first_event(_trigger(path, timeout_at=time.time() + 0.5))
    assert failing["status"] == "timeout"
    assert "expect_column_values_to_be_between on age: 1 unexpected" in failing["last_failure"]
    assert failing["result_id"] in failing["last_failure"]


def test_a_bad_suite_ends_the_wait_at_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{tmp_path / 'integrity.db'}")
    path = tmp_path / "patients.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    bad = [{"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "age"}}]
    payload = _first_event(_trigger(path, suite=bad, timeout_at=time.time() + 30))
    assert payload["status"] == "error" and "expect_column_values_to_be_betwen" in payload["message"]
