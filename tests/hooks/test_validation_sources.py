"""Every data source reaches the validation: files (local and object storage), SQL through Airflow connections
(SQLite and PostgreSQL, evaluated in the database), and the JSON body of a real HTTP endpoint."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa
from airflow.sdk import ObjectStoragePath

from airflow_integrity.hooks.data_sources import DataSource
from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.hooks.source_arguments import source_from_arguments
from airflow_integrity.validation.errors import DataError, SourceUnavailableError
from tests.hooks.validation_helpers import ROWS, SUITE, http_server

pytestmark = pytest.mark.integration


@pytest.fixture
def hook(tmp_path, monkeypatch) -> IntegrityCheckHook:
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{tmp_path / 'integrity.db'}")
    return IntegrityCheckHook()


def _failed_columns(summary: dict) -> dict[str, int]:
    return {f["column"]: f["unexpected_count"] for f in summary["failures"]}


def test_files_local_and_object_storage(hook: IntegrityCheckHook, tmp_path) -> None:
    pd.DataFrame(ROWS).to_csv(tmp_path / "patients.csv", index=False)
    (tmp_path / "patients.data").write_text("\n".join(json.dumps(r) for r in ROWS))
    in_memory = hook.validate_data(ROWS, SUITE).summary
    for source in (
        source_from_arguments(path=str(tmp_path / "patients.csv")),
        source_from_arguments(path=tmp_path / "patients.data", file_format="jsonl"),
        source_from_arguments(path=ObjectStoragePath(f"file://{tmp_path}/patients.csv")),
    ):
        assert source is not None
        assert DataSource.deserialize(json.loads(json.dumps(source.serialize()))) == source
        summary = hook.validate_data(None, SUITE, source=source).summary
        assert _failed_columns(summary) == {"age": 1, "email": 1}
        assert summary["data"]["rows"] == 3
    # The same rows from a file and from XCom have the same content fingerprint.
    assert summary["data"]["fingerprint"] == in_memory["data"]["fingerprint"]
    with pytest.raises(DataError, match="does not exist"):
        hook.validate_data(None, SUITE, source=source_from_arguments(path=str(tmp_path / "missing.csv")))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sql_table_and_query_through_an_airflow_connection(hook, backend, tmp_path, monkeypatch, request) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'warehouse.db'}"
        engine = sa.create_engine(url)
    else:
        url = request.getfixturevalue("pg_database")
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    pd.DataFrame(ROWS).to_sql("patients", engine, index=False)
    engine.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", url)

    table = hook.validate_data(None, SUITE, source=source_from_arguments(conn_id="warehouse", table="patients"))
    assert table.summary["data"]["kind"] == "query"  # evaluated in the database, no rows fetched
    assert table.outcome.frame is None
    assert _failed_columns(table.summary) == {"age": 1, "email": 1}

    query = source_from_arguments(conn_id="warehouse", sql="SELECT * FROM patients WHERE age < 100")
    assert (
        query is not None
        and query.label() == "SQL query 'SELECT * FROM patients WHERE age < 100' on connection 'warehouse'"
    )
    assert _failed_columns(hook.validate_data(None, SUITE, source=query).summary) == {"email": 1}

    # Quarantine needs the rows: they are fetched, and the content fingerprinted.
    rows = hook.validate_data(None, SUITE, source=query, collect_unexpected_rows=True)
    assert rows.summary["data"]["kind"] == "content" and rows.outcome.frame is not None

    stored = hook.get_validation_result(table.result_id)
    assert stored is not None and len(stored.full_result["results"]) == len(SUITE)


def test_http_endpoint_json_body(hook, tmp_path, monkeypatch) -> None:
    site = tmp_path / "site"
    (site / "api").mkdir(parents=True)
    (site / "api" / "patients.json").write_text(json.dumps({"count": 3, "data": ROWS}))
    (site / "api" / "nested.json").write_text(json.dumps({"page": {"items": ROWS[:1]}, "links": []}))
    with http_server(site) as url:
        monkeypatch.setenv("AIRFLOW_CONN_PATIENTS_API", url)
        source = source_from_arguments(http_conn_id="patients_api", endpoint="api/patients.json")
        summary = hook.validate_data(None, SUITE, source=source).summary
        assert _failed_columns(summary) == {"age": 1, "email": 1}
        assert summary["data"]["source"] == "HTTP GET 'api/patients.json' on connection 'patients_api'"

        nested = source_from_arguments(
            http_conn_id="patients_api", endpoint="api/nested.json", records_path="page.items"
        )
        assert hook.validate_data(None, SUITE, source=nested).summary["status"] == "passed"

        missing = source_from_arguments(http_conn_id="patients_api", endpoint="api/none.json")
        with pytest.raises(SourceUnavailableError, match="404"):
            hook.validate_data(None, SUITE, source=missing)


def test_source_arguments_are_checked() -> None:
    assert source_from_arguments() is None
    with pytest.raises(DataError, match="needs exactly one of path=, sql=, table= or endpoint=; got path, table"):
        source_from_arguments(path="a.csv", table="t", conn_id="c")
    with pytest.raises(DataError, match="needs conn_id="):
        source_from_arguments(table="t")
    with pytest.raises(DataError, match="needs http_conn_id="):
        source_from_arguments(endpoint="/x")
