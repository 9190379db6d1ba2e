"""ValidatedDataSensor: pokes until the data passes, times out naming the last failure, defers to its trigger."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_integrity.compat import AirflowFailException, AirflowSensorTimeout, TaskDeferred
from airflow_integrity.sensors.validated_data import ValidatedDataSensor
from airflow_integrity.triggers.validated_data import ValidatedDataTrigger
from tests.hooks.validation_helpers import ROWS, SUITE

pytestmark = pytest.mark.integration


@pytest.fixture
def patients(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{tmp_path / 'integrity.db'}")
    path = tmp_path / "patients.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    return path


def test_poke_mode_passes_on_valid_data_and_times_out_naming_the_last_failure(patients) -> None:
    failing = ValidatedDataSensor(task_id="wait", path=str(patients), suite=SUITE, poke_interval=0.1, timeout=0.5)
    with pytest.raises(
        AirflowSensorTimeout, match=r"(?s)Last check: Suite .* expect_column_values_to_be_between on age"
    ):
        failing.execute({})  # type: ignore[arg-type]

    pd.DataFrame([ROWS[0]]).to_csv(patients, index=False)
    passing = ValidatedDataSensor(task_id="wait", path=str(patients), suite=SUITE, poke_interval=0.1, timeout=5)
    assert passing.execute({})["summary"]["status"] == "passed"  # type: ignore[arg-type]


def test_deferrable_mode_hands_the_wait_to_the_trigger(patients) -> None:
    class TaskInstance:
        dag_id, run_id, task_id, map_index, try_number, dag_version_id = ("d", "r", "wait", -1, 1, None)

    sensor = ValidatedDataSensor(
        task_id="wait", path=str(patients), suite=SUITE, poke_interval=5, timeout=60, deferrable=True
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": TaskInstance()})  # type: ignore[typeddict-item]
    trigger = deferred.value.trigger
    assert isinstance(trigger, ValidatedDataTrigger) and deferred.value.method_name == "execute_complete"
    assert trigger.source == {"kind": "path", "path": str(patients)} and trigger.poke_interval == 5.0
    assert trigger.task_identity is not None and trigger.task_identity["task_id"] == "wait"

    summary = {"status": "passed", "result_id": "x"}
    assert sensor.execute_complete({}, {"status": "success", "summary": summary}) == {"summary": summary}  # type: ignore[arg-type]
    with pytest.raises(AirflowSensorTimeout, match=r"after 3 checks.*Last check: age out of range"):
        sensor.execute_complete({}, {"status": "timeout", "checks": 3, "last_failure": "age out of range"})  # type: ignore[arg-type]
    with pytest.raises(AirflowFailException, match="unknown expectation"):
        sensor.execute_complete({}, {"status": "error", "message": "unknown expectation"})  # type: ignore[arg-type]
