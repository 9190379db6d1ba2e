"""ValidateDataOperator: cheap parse-time checks, file sources, the return contract and the OpenLineage facet."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.lineage import FACET_NAME, assertion_rows, openlineage_available
from airflow_integrity.operators.validate import ValidateDataOperator
from airflow_integrity.validation.errors import SuiteError
from tests.hooks.validation_helpers import ROWS, SUITE

pytestmark = pytest.mark.integration


@pytest.mark.unit
def test_constructor_checks_are_cheap_and_name_the_problem(tmp_path) -> None:
    with pytest.raises(ValueError, match="exactly one of data=, path=, sql=, table= or endpoint=; got none"):
        ValidateDataOperator(task_id="v", suite=SUITE)
    with pytest.raises(ValueError, match="got data, path"):
        ValidateDataOperator(task_id="v", suite=SUITE, data=ROWS, path="x.csv")
    # Without quarantine_path the rows go to [integrity] quarantine_dir when the task runs.
    default = ValidateDataOperator(task_id="v", suite=SUITE, data=ROWS, on_failure="quarantine")
    assert default.quarantine_path is None and default.allow_quarantine_path_from_conf is False
    with pytest.raises(ValueError, match="needs a folder for the rejected rows: quarantine_path="):
        ValidateDataOperator(task_id="v", suite=SUITE, data=ROWS, on_failure="quarantine", quarantine_path="")
    with pytest.raises(ValueError, match="quarantine_format='xlsx' is not one of csv, jsonl, parquet"):
        ValidateDataOperator(
            task_id="v", suite=SUITE, data=ROWS, on_failure="quarantine", quarantine_format="xlsx"
        )
    with pytest.raises(ValueError, match="samples='hash' is not one of 'values', 'hashed', 'none'"):
        ValidateDataOperator(task_id="v", suite=SUITE, data=ROWS, samples="hash")
    with pytest.raises(ValueError, match="on_failure='retry' is not one of"):
        ValidateDataOperator(task_id="v", suite=SUITE, data=ROWS, on_failure="retry")
    broken = tmp_path / "broken.json"
    broken.write_text('{"expectations": [{"kwargs": {}}]}')
    with pytest.raises(SuiteError, match="expectation #0: has no 'type'"):
        ValidateDataOperator(task_id="v", suite=str(broken), data=ROWS)
    # A templated suite reference is checked when it is rendered, not at parse time.
    ValidateDataOperator(task_id="v", suite="{{ params.suite }}", data=ROWS)


@pytest.mark.unit
def test_a_dag_file_using_the_operator_imports_neither_gx_nor_pandas() -> None:
    code = (
        "import sys\n"
        "from airflow_integrity.operators.validate import ValidateDataOperator\n"
        "from airflow_integrity.sensors.validated_data import ValidatedDataSensor\n"
        "from airflow_integrity.decorators.validated import validated_task\n"
        "ValidateDataOperator(task_id='v', suite=[{'type': 'expect_column_to_exist', 'kwargs': {'column': 'a'}}],"
        " path='data.csv', on_failure='quarantine', quarantine_path='q/')\n"
        "print(sorted(m for m in ('great_expectations', 'pandas') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_file_source_returns_summary_and_rows_and_lineage(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{tmp_path / 'integrity.db'}")
    path = tmp_path / "patients.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    operator = ValidateDataOperator(
        task_id="check_file", path=str(path), suite=SUITE, on_failure="warn", return_data=True
    )
    assert operator.get_openlineage_facets_on_complete(None) is None  # nothing validated yet

    result = operator.execute({})  # type: ignore[arg-type]
    assert json.loads(json.dumps(result)) == result
    # A CSV file's rows flow on as the file holds them: each cell's text.
    assert result["data"] == [{key: str(value) for key, value in row.items()} for row in ROWS]
    summary = result["summary"]
    assert (summary["status"], summary["data"]["source"]) == ("failed", f"file {str(path)!r}")
    stored = IntegrityCheckHook().get_validation_result(summary["result_id"])
    assert stored is not None and stored.summary == summary

    rows = assertion_rows(summary, operator._lineage["expectations"])  # type: ignore[index]
    assert [(r["assertion"], r["column"], r["success"]) for r in rows] == [
        ("expect_column_values_to_not_be_null", "patient_id", True),
        ("expect_column_values_to_be_between", "age", False),
        ("expect_column_values_to_match_regex", "email", False),
    ]
    lineage = operator.get_openlineage_facets_on_complete(None)
    if not openlineage_available():
        assert lineage is None
        pytest.skip("the OpenLineage provider is not installed: the facet itself cannot be built")
    [dataset] = lineage.inputs
    assert (dataset.namespace, dataset.name) == ("file", str(path))
    facet = dataset.inputFacets[FACET_NAME]
    assert [(a.assertion, a.column, a.success, a.severity) for a in facet.assertions] == [
        ("expect_column_values_to_not_be_null", "patient_id", True, "error"),
        ("expect_column_values_to_be_between", "age", False, "error"),
        ("expect_column_values_to_match_regex", "email", False, "warn"),
    ]


def test_rows_handed_on_are_the_original_records_and_frame_rows(tmp_path, monkeypatch) -> None:
    from tests.hooks.test_validation_handoff import AGE, BIG, EXACT

    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{tmp_path / 'integrity.db'}")
    quarantined = ValidateDataOperator(
        task_id="split",
        data=EXACT,
        suite=AGE,
        on_failure="quarantine",
        quarantine_path=str(tmp_path / "q"),
        max_unexpected_fraction=0.5,
    ).execute({})  # type: ignore[arg-type]
    assert quarantined["data"] == [EXACT[0], EXACT[2]]
    assert quarantined["data"][0] is EXACT[0] and quarantined["data"][0]["id"] == BIG

    # return_data under warn hands on everything that came in, as it came in.
    returned = ValidateDataOperator(
        task_id="warn", data=EXACT, suite=AGE, on_failure="warn", return_data=True
    ).execute({})  # type: ignore[arg-type]
    assert returned["data"] == EXACT and all(a is b for a, b in zip(returned["data"], EXACT, strict=True))

    frame = pd.DataFrame(EXACT, index=[7, 8, 9])
    frame["id"] = pd.array([BIG, None, BIG + 2], dtype="Int64")
    from_frame = ValidateDataOperator(
        task_id="warn_frame", data=frame, suite=AGE, on_failure="warn", return_data=True
    ).execute({})  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(from_frame["data"], frame)
    split_frame = ValidateDataOperator(
        task_id="split_frame",
        data=frame,
        suite=AGE,
        on_failure="quarantine",
        quarantine_path=str(tmp_path / "q"),
        max_unexpected_fraction=0.5,
    ).execute({})  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(split_frame["data"], frame.iloc[[0, 2]])
