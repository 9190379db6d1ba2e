"""Rows the package reads itself (files, JSON text, SQL, HTTP) are handed on as the source holds them.

Validation runs on a typed frame, but what flows on (the good rows of a quarantine split, ``return_data``) and
what a quarantine file holds come from the source itself, selected by position: a CSV file's cell text, the
original text of each JSON record, an SQL driver's values. Each case is also sent through Airflow's XCom
serialisation, which is what a downstream task receives (Airflow turns a ``Decimal`` into a float there, so no
JSON number may become one).
"""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_integrity.hooks.integrity import IntegrityCheckHook
from airflow_integrity.hooks.source_arguments import source_from_arguments
from airflow_integrity.hooks.validation import enforce
from airflow_integrity.operators.validate import ValidateDataOperator
from airflow_integrity.validation.quarantine import REASONS_COLUMN
from tests.hooks.validation_helpers import http_server

pytestmark = pytest.mark.integration

NAME = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}}]
REASON = "#0 expect_column_values_to_not_be_null on name"
# The third row has no name: it is quarantined, the others flow on. An int column with a null (pandas makes it
# float64: 9007199254740993 becomes 9007199254740992.0, 19 becomes 19.0) and decimals beyond a float.
CSV = "id,name,amount,visits\n9007199254740993,a,0.1,19\n,b,12345678901234567.89,\n9007199254740995,,100.10,7\n"
RECORDS = [
    '{"id": 9007199254740993, "name": "a", "amount": 12345678901234567.89, "tags": [1.50, {"x": null}]}',
    '{"id": null, "name": "b", "amount": 100.10, "tags": []}',
    '{"id": 9007199254740995, "name": null, "amount": 1e5, "tags": {"k": 0.30}, "ok": true}',
]
JSON_ARRAY = "[\n  " + ",\n  ".join(RECORDS) + "\n]\n"
JSON_LINES = "\n".join(RECORDS) + "\n"


def through_xcom(value: Any) -> Any:
    """``value`` as a downstream task receives it: Airflow's XCom serialisation, JSON on the wire, and back."""
    from airflow.sdk.bases.xcom import BaseXCom

    wire = json.loads(json.dumps(BaseXCom.serialize_value(value)))
    return BaseXCom.deserialize_value(SimpleNamespace(value=wire))


@pytest.fixture
def hook(tmp_path, monkeypatch) -> IntegrityCheckHook:
    monkeypatch.setenv("AIRFLOW_CONN_INTEGRITY_DEFAULT", f"sqlite:///{tmp_path / 'integrity.db'}")
    return IntegrityCheckHook()


def _quarantine(hook: IntegrityCheckHook, tmp_path: Path, *, data: Any = None, fmt: str = "csv", **source: Any):  # type: ignore[no-untyped-def]
    found = source_from_arguments(**source) if source else None
    run = hook.validate_data(data, NAME, source=found, collect_unexpected_rows=True)
    handoff = enforce(
        hook,
        run,
        on_failure="quarantine",
        quarantine_path=str(tmp_path / f"q-{fmt}"),
        quarantine_format=fmt,
        max_unexpected_fraction=0.5,
    )
    assert handoff.quarantine is not None and handoff.quarantine["bad_rows"] == 1
    return handoff.good, Path(handoff.quarantine["path"]).read_text()


def test_a_csv_file_flows_on_as_its_cell_text(hook: IntegrityCheckHook, tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.write_text(CSV)
    good, quarantined = _quarantine(hook, tmp_path, path=str(path))
    assert good == [
        {"id": "9007199254740993", "name": "a", "amount": "0.1", "visits": "19"},
        {"id": "", "name": "b", "amount": "12345678901234567.89", "visits": ""},
    ]
    assert through_xcom(good) == good
    assert quarantined == f"id,name,amount,visits,{REASONS_COLUMN}\n9007199254740995,,100.10,7,{REASON}\n"
    _, as_lines = _quarantine(hook, tmp_path, fmt="jsonl", path=str(path))
    assert json.loads(as_lines) == {
        "id": "9007199254740995",
        "name": "",
        "amount": "100.10",
        "visits": "7",
        REASONS_COLUMN: REASON,
    }


def test_a_compressed_csv_and_read_options_keep_rows_and_text_aligned(
    hook: IntegrityCheckHook, tmp_path: Path
) -> None:
    path = tmp_path / "claims.tsv.gz"
    path.write_bytes(gzip.compress(("# exported\n" + CSV.replace(",", "\t")).encode()))
    good, quarantined = _quarantine(hook, tmp_path, path=str(path), read_options={"skiprows": 1})
    assert [row["id"] for row in good] == ["9007199254740993", ""]
    assert quarantined.splitlines()[1] == f"9007199254740995,,100.10,7,{REASON}"


@pytest.mark.parametrize(
    ("name", "content", "form"),
    [
        pytest.param("claims.json", JSON_ARRAY, "array", id="json"),
        pytest.param("claims.jsonl", JSON_LINES, "lines", id="jsonl"),
        pytest.param("claims.json.gz", JSON_ARRAY, "array", id="json-gz"),
        pytest.param("claims.ndjson.gz", JSON_LINES, "lines", id="jsonl-gz"),
    ],
)
def test_a_json_file_flows_on_as_the_text_of_its_records(
    hook: IntegrityCheckHook, tmp_path: Path, name: str, content: str, form: str
) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(content.encode()) if name.endswith(".gz") else content.encode())
    good, quarantined = _quarantine(hook, tmp_path, path=str(path))
    expected = "[" + ",".join(RECORDS[:2]) + "]" if form == "array" else RECORDS[0] + "\n" + RECORDS[1] + "\n"
    assert good == expected
    assert through_xcom(good) == expected
    # Every record is the file's own text: no digit lost, no float.
    decoded = (
        json.loads(good, parse_float=Decimal)
        if form == "array"
        else [json.loads(line, parse_float=Decimal) for line in good.splitlines()]
    )
    assert decoded[0]["id"] == 9007199254740993 and decoded[0]["amount"] == Decimal("12345678901234567.89")
    assert str(decoded[1]["amount"]) == "100.10"
    # The quarantine file holds the rejected record's text, each cell as the file writes it.
    assert quarantined == (
        f'id,name,amount,tags,ok,{REASONS_COLUMN}\n9007199254740995,,1e5,"{{""k"": 0.30}}",true,{REASON}\n'
    )
    _, as_lines = _quarantine(hook, tmp_path, fmt="jsonl", path=str(path))
    assert as_lines == RECORDS[2][:-1] + f', "{REASONS_COLUMN}": "{REASON}"}}\n'


def test_json_text_flows_on_as_its_own_text(hook: IntegrityCheckHook, tmp_path: Path) -> None:
    good, quarantined = _quarantine(hook, tmp_path, data=JSON_ARRAY, fmt="jsonl")
    assert good == "[" + ",".join(RECORDS[:2]) + "]"
    assert through_xcom(good) == good
    assert json.loads(good, parse_float=Decimal)[0]["amount"] == Decimal("12345678901234567.89")
    assert quarantined == RECORDS[2][:-1] + f', "{REASONS_COLUMN}": "{REASON}"}}\n'
    lines, _ = _quarantine(hook, tmp_path, data=JSON_LINES.encode())
    assert lines == (RECORDS[0] + "\n" + RECORDS[1] + "\n").encode()  # bytes came in, bytes flow on


def test_json_text_of_columns_flows_on_as_columns(hook: IntegrityCheckHook, tmp_path: Path) -> None:
    text = (
        '{"id": [9007199254740993, null, 3], "name": ["a", "b", null], "amount": [0.10, 12345678901234567.89, 1]}'
    )
    good, quarantined = _quarantine(hook, tmp_path, data=text)
    assert good == '{"id":[9007199254740993,null],"name":["a","b"],"amount":[0.10,12345678901234567.89]}'
    assert quarantined == f"id,name,amount,{REASONS_COLUMN}\n3,,1,{REASON}\n"


def test_return_data_hands_on_the_whole_source_exactly_through_xcom(hook: IntegrityCheckHook, tmp_path) -> None:
    path = tmp_path / "claims.csv"
    path.write_text(CSV)
    from_file = ValidateDataOperator(
        task_id="file", path=str(path), suite=NAME, on_failure="warn", return_data=True
    ).execute({})  # type: ignore[arg-type]
    received = through_xcom(from_file)["data"]
    assert [row["id"] for row in received] == ["9007199254740993", "", "9007199254740995"]
    assert [row["visits"] for row in received] == ["19", "", "7"]

    from_text = ValidateDataOperator(
        task_id="text", data=JSON_ARRAY, suite=NAME, on_failure="warn", return_data=True
    ).execute({})  # type: ignore[arg-type]
    assert through_xcom(from_text)["data"] == JSON_ARRAY  # all rows: the text as it came in


def test_an_sql_table_flows_on_as_the_drivers_values(hook: IntegrityCheckHook, tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE claims (id INTEGER, name TEXT, visits INTEGER)"))
        conn.execute(
            sa.text("INSERT INTO claims VALUES (9007199254740993, 'a', 19), (NULL, 'b', NULL), (7, NULL, 3)")
        )
    engine.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", url)

    good, quarantined = _quarantine(hook, tmp_path, conn_id="warehouse", sql="SELECT * FROM claims ORDER BY name")
    # ORDER BY name puts the row without a name first in SQLite: positions are the query's, not the table's.
    assert good == [{"id": 9007199254740993, "name": "a", "visits": 19}, {"id": None, "name": "b", "visits": None}]
    assert type(good[0]["id"]) is int and through_xcom(good) == good
    assert quarantined == f"id,name,visits,{REASONS_COLUMN}\n7,,3,{REASON}\n"

    returned = ValidateDataOperator(
        task_id="table", conn_id="warehouse", table="claims", suite=NAME, on_failure="warn", return_data=True
    ).execute({})  # type: ignore[arg-type]
    assert through_xcom(returned)["data"] == [
        {"id": 9007199254740993, "name": "a", "visits": 19},
        {"id": None, "name": "b", "visits": None},
        {"id": 7, "name": None, "visits": 3},
    ]


def test_an_http_body_flows_on_as_the_text_of_its_records(hook: IntegrityCheckHook, tmp_path, monkeypatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "claims.json").write_text('{"count": 3, "data": ' + JSON_ARRAY + ', "links": []}')
    with http_server(site) as url:
        monkeypatch.setenv("AIRFLOW_CONN_CLAIMS_API", url)
        good, quarantined = _quarantine(hook, tmp_path, http_conn_id="claims_api", endpoint="claims.json")
        nested, _ = _quarantine(
            hook, tmp_path, http_conn_id="claims_api", endpoint="claims.json", records_path="data"
        )
    assert good == nested == "[" + ",".join(RECORDS[:2]) + "]"
    assert through_xcom(good) == good
    assert quarantined.splitlines()[1] == f'9007199254740995,,1e5,"{{""k"": 0.30}}",true,{REASON}'


def test_a_parquet_file_flows_on_as_its_stored_values(hook: IntegrityCheckHook, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="reading Parquet needs pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Written as another tool writes it (no pandas metadata): pandas reads the int64 column with a null as floats.
    ids = pa.array([9007199254740993, None, 7], pa.int64())
    pq.write_table(pa.table({"id": ids, "name": ["a", "b", None]}), tmp_path / "claims.parquet")
    good, quarantined = _quarantine(hook, tmp_path, path=str(tmp_path / "claims.parquet"))
    assert good == [{"id": 9007199254740993, "name": "a"}, {"id": None, "name": "b"}]
    assert type(good[0]["id"]) is int and through_xcom(good) == good
    assert quarantined == f"id,name,{REASONS_COLUMN}\n7,,{REASON}\n"


def test_a_decimal_that_xcom_would_change_is_refused_naming_row_column_and_fix(
    hook: IntegrityCheckHook, pg_database: str, monkeypatch
) -> None:
    from airflow_integrity.compat import AirflowFailException

    engine = sa.create_engine(pg_database.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE claims (id BIGINT, name TEXT, amount NUMERIC(20, 2))"))
        conn.execute(sa.text("INSERT INTO claims VALUES (1, 'a', 100.10), (2, 'b', 12345678901234567.89)"))
    engine.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_database)

    def run(sql: str) -> Any:
        return ValidateDataOperator(
            task_id="claims", conn_id="warehouse", sql=sql, suite=NAME, on_failure="warn", return_data=True
        ).execute({})  # type: ignore[arg-type]

    # A Decimal a float holds reaches the downstream task as the same number.
    [row] = through_xcom(run("SELECT * FROM claims WHERE id = 1"))["data"]
    assert row == {"id": 1, "name": "a", "amount": Decimal("100.10")}
    # Airflow's XCom would make 12345678901234568 of this one: the task says so instead of handing it on.
    with pytest.raises(
        AirflowFailException,
        match=r"row 1, column 'amount': Decimal\('12345678901234567\.89'\) would reach downstream tasks as "
        r"Decimal\('12345678901234568'\).*CAST\(amount AS TEXT\)",
    ):
        run("SELECT * FROM claims ORDER BY id")
    [as_text] = through_xcom(run("SELECT id, name, CAST(amount AS TEXT) AS amount FROM claims WHERE id = 2"))[
        "data"
    ]
    assert as_text == {"id": 2, "name": "b", "amount": "12345678901234567.89"}
