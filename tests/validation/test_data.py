"""Data adapters: what tasks hand each other becomes a DataFrame, and what is not a table is named as such."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from airflow.sdk import ObjectStoragePath

from airflow_integrity.validation import (
    DataError,
    UnsupportedFormatError,
    frame_from_path,
    frame_from_value,
    records_from_json_body,
)

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
RECORDS = [{"patient_id": 1, "name": "Ada", "age": 36}, {"patient_id": 2, "name": "Grace", "age": 85}]
EXPECTED = pd.DataFrame(RECORDS)


def _same_table(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == ["patient_id", "name", "age"]
    assert frame.to_dict("records") == RECORDS


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(EXPECTED, id="dataframe"),
        pytest.param(RECORDS, id="records"),
        pytest.param({k: [r[k] for r in RECORDS] for k in RECORDS[0]}, id="dict-of-columns"),
        pytest.param(json.dumps(RECORDS), id="json-records"),
        pytest.param(json.dumps({k: [r[k] for r in RECORDS] for k in RECORDS[0]}), id="json-columns"),
        pytest.param("\n".join(json.dumps(r) for r in RECORDS), id="json-lines"),
        pytest.param(json.dumps(RECORDS).encode(), id="json-bytes"),
    ],
)
def test_upstream_return_values_become_the_same_table(value):
    _same_table(frame_from_value(value))


def test_a_dataframe_is_used_as_it_is():
    assert frame_from_value(EXPECTED) is EXPECTED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, "is an int (42), not a table"),
        (None, "is None, not a table"),
        ([1, 2, 3], "is a list, but element #0 is an int (1)"),
        ([{"a": 1}, "b"], "element #1 is a str ('b')"),
        ({"patient_id": 1, "name": "Ada"}, "a dict of scalars, which looks like one record"),
        ({"a": [1, 2], "b": 3}, "column 'b' holds an int (3) instead of a list of values"),
        ({"a": [1, 2], "b": [1]}, "different lengths (a=2, b=1)"),
        ("patients.csv", "is text but not JSON"),
        ("42", "holds an int (42), not a table"),
    ],
)
def test_values_that_are_not_tables_are_named(value, expected):
    with pytest.raises(DataError) as error:
        frame_from_value(value, label="return value of task 'register'")
    assert expected in str(error.value)
    assert str(error.value).startswith("return value of task 'register'")


def test_duplicate_and_nested_column_names_are_refused():
    duplicated = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(DataError, match=r"duplicate column names \['a'\]"):
        frame_from_value(duplicated)
    nested = pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")]))
    with pytest.raises(DataError, match="multi-level column labels"):
        frame_from_value(nested)


@pytest.mark.parametrize("name", ["patients.json", "patients.jsonl", "patients_clean.csv"])
def test_local_files_are_read_by_suffix(name):
    frame = frame_from_path(DATA / name)
    assert list(frame.columns) == ["patient_id", "name", "age", "insurance"]
    assert frame["name"].iloc[0] == "Ada Lovelace"
    assert len(frame) == {"patients.json": 2, "patients.jsonl": 2, "patients_clean.csv": 4}[name]


def test_tsv_compressed_csv_and_an_explicit_format(tmp_path: Path):
    (tmp_path / "p.tsv").write_text("a\tb\n1\tx\n")
    assert frame_from_path(tmp_path / "p.tsv").to_dict("records") == [{"a": 1, "b": "x"}]
    with gzip.open(tmp_path / "p.csv.gz", "wt") as handle:
        handle.write("a,b\n1,x\n2,y\n")
    assert len(frame_from_path(str(tmp_path / "p.csv.gz"))) == 2
    (tmp_path / "export.txt").write_text("a,b\n1,x\n")
    assert frame_from_path(tmp_path / "export.txt", file_format="csv").to_dict("records") == [{"a": 1, "b": "x"}]
    frame = frame_from_path(tmp_path / "export.txt", file_format="csv", read_options={"dtype": {"a": str}})
    assert frame["a"].iloc[0] == "1"


def test_object_storage_paths_are_read_through_their_filesystem():
    path = ObjectStoragePath(f"file://{(DATA / 'patients_clean.csv').as_posix()}")
    frame = frame_from_path(path)
    assert frame.equals(frame_from_path(DATA / "patients_clean.csv"))
    with pytest.raises(DataError, match="does not exist in object storage"):
        frame_from_path(ObjectStoragePath(f"file://{(DATA / 'absent.csv').as_posix()}"))


def test_unreadable_files_are_named(tmp_path: Path):
    with pytest.raises(DataError, match=r"file '.*absent\.csv' does not exist"):
        frame_from_path(tmp_path / "absent.csv")
    with pytest.raises(UnsupportedFormatError, match=r"Cannot tell the format of '.*data\.xlsx' from its suffix"):
        frame_from_path(tmp_path / "data.xlsx")
    with pytest.raises(UnsupportedFormatError, match="File format 'xml' is not supported"):
        frame_from_path(tmp_path / "data.csv", file_format="xml")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"file '.*bad\.json' \(JSON\)|is text but not JSON"):
        frame_from_path(tmp_path / "bad.json")
    (tmp_path / "binary.csv").write_bytes(b"a,b\n\xff\xfe\x00,1\n")
    with pytest.raises(DataError, match=r"binary\.csv' cannot be read as csv: UnicodeDecodeError"):
        frame_from_path(tmp_path / "binary.csv")


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None, reason="pyarrow is installed here")
def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path):
    with pytest.raises(UnsupportedFormatError, match=r"patients\.parquet' needs pyarrow.*pip install pyarrow"):
        frame_from_path(tmp_path / "patients.parquet")


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="needs pyarrow")
def test_parquet_files_are_read(tmp_path: Path):
    EXPECTED.to_parquet(tmp_path / "p.parquet")
    _same_table(frame_from_path(tmp_path / "p.parquet"))


@pytest.mark.parametrize(
    ("body", "records_path"),
    [
        pytest.param(RECORDS, None, id="list"),
        pytest.param({"data": RECORDS, "count": 2}, None, id="one-list-member"),
        pytest.param({"meta": {"page": 1}, "result": {"items": RECORDS}}, None, id="nested-member"),
        pytest.param({"a": RECORDS, "b": RECORDS[:1]}, "a", id="records-path"),
        pytest.param({"pages": [{"rows": RECORDS}]}, "pages.0.rows", id="path-with-list-position"),
        pytest.param(json.dumps({"data": RECORDS}), None, id="body-text"),
    ],
)
def test_the_records_of_an_http_json_body_are_found(body, records_path):
    _same_table(frame_from_value(records_from_json_body(body, records_path=records_path)))


def test_an_http_body_of_columns_is_a_table():
    body = {"patient_id": [1, 2], "name": ["Ada", "Grace"], "age": [36, 85]}
    _same_table(frame_from_value(records_from_json_body(body)))


@pytest.mark.parametrize(
    ("body", "records_path", "expected"),
    [
        ({"count": 0, "next": None}, None, "has no list of records (top-level keys: ['count', 'next'])"),
        ({"a": RECORDS, "b": RECORDS}, None, "several lists of records (a, b); pass records_path="),
        ({"data": {"rows": RECORDS}}, "data.items", "data has no 'items' (it has ['rows'])"),
        ("not json", None, "HTTP response body is text but not JSON"),
        (7, None, "HTTP response body is an int (7), not a table of records"),
    ],
)
def test_http_bodies_without_one_clear_table_are_explained(body, records_path, expected):
    with pytest.raises(DataError) as error:
        records_from_json_body(body, records_path=records_path)
    assert expected in str(error.value)
