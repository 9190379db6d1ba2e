"""SQL sources on real SQLite and PostgreSQL databases: validated in the database, or fetched for quarantine."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_integrity.validation import (
    DataError,
    EmptyDataError,
    MissingColumnError,
    SourceUnavailableError,
    SqlSource,
    split_rows,
    validate,
)

pytestmark = pytest.mark.integration

PATIENTS = pd.DataFrame(
    {
        "patient_id": [1, 2, 3, 4, 5],
        "name": ["Ada", "Grace", None, "Katherine", "Edsger"],
        "age": [36, 185, 41, 101, -3],
        "insurance": ["private", "public", "crypto", "public", "public"],
    }
)
SUITE = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 0, "max_value": 120}},
    {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": "insurance", "value_set": ["public", "private"]},
    },
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}, "severity": "warning"},
]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A real database holding the patients table (and an empty table)."""
    url = (
        f"sqlite:///{tmp_path / 'source.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    engine = sa.create_engine(url)
    try:
        PATIENTS.to_sql("patients", engine, index=False)
        PATIENTS.head(0).to_sql("no_patients", engine, index=False)
    finally:
        engine.dispose()
    return url


def test_a_query_validated_in_the_database_reports_what_pandas_validation_reports(database_url: str):
    in_database = validate(SqlSource(database_url, query="SELECT * FROM patients"), SUITE)
    in_pandas = validate(PATIENTS, SUITE)
    assert in_database.summary["statistics"] == in_pandas.summary["statistics"]
    assert [(f["type"], f["unexpected_count"]) for f in in_database.failures] == [
        (f["type"], f["unexpected_count"]) for f in in_pandas.failures
    ]
    assert in_database.summary["success"] is False
    assert in_database.frame is None
    assert in_database.full_result["meta"]["active_batch_definition"]["datasource_name"].startswith("sql_")


def test_the_fingerprint_of_a_query_names_it_without_credentials(database_url: str):
    source = SqlSource(database_url, query="SELECT * FROM patients WHERE age < 200")
    data = validate(source, SUITE).summary["data"]
    assert data["kind"] == "query" and data["fingerprint"].startswith("sha256:")
    other = validate(SqlSource(database_url, query="SELECT * FROM patients"), SUITE).summary["data"]
    assert other["fingerprint"] != data["fingerprint"]
    url = sa.engine.make_url(database_url)
    if url.password:
        assert url.password not in str(data)
    assert source.describe()["query"] == "SELECT * FROM patients WHERE age < 200"


def test_a_table_source_and_an_engine_work_too(database_url: str):
    engine = sa.create_engine(database_url)
    try:
        outcome = validate(SqlSource(engine, table="patients"), SUITE)
    finally:
        engine.dispose()
    assert outcome.summary["statistics"]["unsuccessful_expectations"] == 3


def test_quarantine_fetches_the_rows_and_splits_them(database_url: str):
    outcome = validate(
        SqlSource(database_url, query="SELECT * FROM patients ORDER BY patient_id"),
        SUITE,
        collect_unexpected_rows=True,
    )
    assert outcome.frame is not None and outcome.summary["data"]["kind"] == "content"
    split = split_rows(outcome)
    assert list(split.good["patient_id"]) == [1, 4]
    assert list(split.bad["patient_id"]) == [2, 3, 5]
    assert split.bad_fraction == pytest.approx(0.6)


def test_an_empty_result_and_a_missing_column_are_named_before_gx_runs(database_url: str):
    with pytest.raises(EmptyDataError, match=r"table 'no_patients'.*returned no rows \(columns: patient_id, name"):
        validate(SqlSource(database_url, table="no_patients"), SUITE)
    assert validate(SqlSource(database_url, table="no_patients"), SUITE[:1], allow_empty=True).success
    suite = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "insurer"}}]
    with pytest.raises(MissingColumnError, match=r"needs column 'insurer' \(did you mean 'insurance'\?\)"):
        validate(SqlSource(database_url, query="SELECT * FROM patients"), suite)


def test_a_failing_query_is_a_data_error_naming_the_query(database_url: str):
    with pytest.raises(DataError, match=r"SQL query 'SELECT \* FROM patient' on .* failed: .*patient"):
        validate(SqlSource(database_url, query="SELECT * FROM patient"), SUITE)


def test_an_unreachable_database_is_reported_as_retryable(tmp_path: Path):
    source = SqlSource(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}", table="t")
    with pytest.raises(SourceUnavailableError, match="cannot connect"):
        validate(source, SUITE)


def test_a_source_needs_exactly_one_of_query_and_table():
    with pytest.raises(DataError, match="exactly one of query="):
        SqlSource("sqlite://", query="SELECT 1", table="t")
    with pytest.raises(DataError, match="exactly one of query="):
        SqlSource("sqlite://")
    with pytest.raises(DataError, match="is not an SQLAlchemy URL"):
        SqlSource("not a url", table="t").describe()


def test_fetched_rows_are_handed_on_as_the_drivers_values(database_url: str):
    engine = sa.create_engine(database_url)
    amount = "NUMERIC(20, 2)" if engine.dialect.name == "postgresql" else "TEXT"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE claims (id BIGINT, name TEXT, amount {amount})"))
        conn.execute(
            sa.text(
                "INSERT INTO claims VALUES (9007199254740993, 'a', '12345678901234567.89'), (NULL, NULL, '0.10')"
            )
        )
    engine.dispose()
    outcome = validate(
        SqlSource(database_url, query="SELECT * FROM claims ORDER BY name"),
        [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}}],
        collect_unexpected_rows=True,
    )
    assert outcome.frame is not None and outcome.frame["id"].dtype == "float64"  # what GX checks: pandas' types
    split = split_rows(outcome)
    assert outcome.rows is not None
    [good] = outcome.rows.hand_on(split.good_positions)
    [bad] = outcome.rows.hand_on(split.bad_positions)
    expected = Decimal("12345678901234567.89") if engine.dialect.name == "postgresql" else "12345678901234567.89"
    assert good == {"id": 9007199254740993, "name": "a", "amount": expected}
    assert type(good["id"]) is int and str(good["amount"]) == "12345678901234567.89"
    assert bad["id"] is None and str(bad["amount"]) == "0.10"
    # Only the rows that are needed travel: without quarantine or keep_rows the database checks them.
    assert validate(SqlSource(database_url, table="claims"), SUITE[:1]).rows is None
    kept = validate(SqlSource(database_url, table="claims"), SUITE[:1], keep_rows=True)
    assert kept.rows is not None and kept.rows.hand_on()[0]["id"] == 9007199254740993


def test_a_result_with_a_repeated_column_name_is_refused_naming_it(database_url: str):
    query = "SELECT p.name, q.name FROM patients p JOIN patients q ON p.patient_id = q.patient_id"
    with pytest.raises(DataError, match=r"returns the column name\(s\) \['name'\] more than once; .* AS "):
        validate(SqlSource(database_url, query=query), SUITE[:1], collect_unexpected_rows=True)
