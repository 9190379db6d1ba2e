"""Data fingerprints: equal tables match however they were handed over, and any difference changes them."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_integrity.validation import DataError, frame_fingerprint, frame_from_value

pytestmark = pytest.mark.unit


def fp(value) -> str:  # type: ignore[no-untyped-def]
    frame = value if isinstance(value, pd.DataFrame) else frame_from_value(value)
    return frame_fingerprint(frame)["fingerprint"]


RECORDS = [{"id": 1, "name": "Ada", "amount": 1.5}, {"id": 2, "name": None, "amount": 2.25}]


def test_the_same_rows_match_whatever_the_hand_over_form_and_index():
    frame = pd.DataFrame(RECORDS)
    assert fp(RECORDS) == fp(frame) == fp(frame.set_axis([7, 9])) == fp(frame.to_json(orient="records"))
    result = frame_fingerprint(frame)
    assert result["rows"] == 2 and result["columns"] == 3 and result["kind"] == "content"
    assert result["fingerprint"].startswith("sha256:") and len(result["fingerprint"]) == 71


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param([{**RECORDS[0], "name": "Ada "}, RECORDS[1]], id="value"),
        pytest.param([{**RECORDS[0], "name": ""}, RECORDS[1]], id="empty-string"),
        pytest.param([RECORDS[0], {**RECORDS[1], "name": ""}], id="null-vs-empty"),
        pytest.param([RECORDS[1], RECORDS[0]], id="row-order"),
        pytest.param(
            [{"name": r["name"], "id": r["id"], "amount": r["amount"]} for r in RECORDS], id="column-order"
        ),
        pytest.param([{**r, "amount": int(r["amount"] * 4)} for r in RECORDS], id="dtype"),
        pytest.param(
            [{"ident": r["id"], "name": r["name"], "amount": r["amount"]} for r in RECORDS], id="column-name"
        ),
        pytest.param(RECORDS[:1], id="fewer-rows"),
    ],
)
def test_any_difference_changes_the_fingerprint(changed):
    assert fp(changed) != fp(RECORDS)


def test_text_containing_the_separator_cannot_collide():
    assert fp({"s": ["a\x00b", ""]}) != fp({"s": ["a", "b\x00"]})
    assert fp({"s": ["a\x00b", ""]}) == fp({"s": ["a\x00b", ""]})
    many = ["x"] * 9000  # text is joined a few thousand values at a time: the check spans every chunk
    assert fp({"s": [*many, "a\x00b", ""]}) != fp({"s": [*many, "a", "b\x00"]})


def test_the_digest_is_the_documented_canonical_form():
    frame = pd.DataFrame({"id": [1, 2], "name": ["Ada", "Grace"]})
    header = b'{"v":1,"rows":2,"columns":[["id","int64"],["name","str"]]}'
    text = b"Ada\x00Grace"
    ids = (1).to_bytes(8, "little") + (2).to_bytes(8, "little")
    canonical = header + b"\x1e" + ids + b"\x1e" + b"S%d:" % len(text) + text
    assert frame_fingerprint(frame)["fingerprint"] == "sha256:" + hashlib.sha256(canonical).hexdigest()


def test_large_frames_hashed_in_the_background_give_the_same_digest(monkeypatch):
    from airflow_integrity.validation import fingerprint

    rows = 60_000  # with 4 columns, enough cells to hash in a background thread
    frame = pd.DataFrame(
        {
            "id": range(rows),
            "name": [f"patient-{i % 997}" for i in range(rows)],
            "amount": [i / 7 for i in range(rows)],
            "mixed": [None if i % 5 else i for i in range(rows)],
        }
    )
    in_background = frame_fingerprint(frame)
    monkeypatch.setattr(fingerprint, "_BACKGROUND_CELLS", 10**12)
    assert frame_fingerprint(frame) == in_background
    with pytest.raises(DataError, match=r"column 'tags', row 59999, holds set"):
        frame_fingerprint(frame.assign(tags=[[1]] * (rows - 1) + [{1}]))
    monkeypatch.undo()
    with pytest.raises(DataError, match=r"column 'tags', row 59999, holds set"):
        frame_fingerprint(frame.assign(tags=[[1]] * (rows - 1) + [{1}]))


def test_mixed_and_nested_values_have_a_canonical_form():
    mixed = {"v": [1, "1", 1.5, True, None, [1, 2], {"b": 1, "a": 2}]}
    assert fp(mixed) == fp(dict(mixed))
    assert fp({"v": [1, "1"]}) != fp({"v": ["1", 1]})
    assert fp({"v": [{"a": 2, "b": 1}]}) == fp({"v": [{"b": 1, "a": 2}]})
    special = {
        "v": [
            decimal.Decimal("1.10"),
            dt.date(2024, 1, 2),
            dt.datetime(2024, 1, 2, 3, 4),
            b"\x00\x01",
            float("inf"),
        ]
    }
    assert fp(special) == fp(dict(special))
    assert fp({"v": [decimal.Decimal("1.10")]}) != fp({"v": [decimal.Decimal("1.1")]})


def test_extension_types_are_fingerprinted_by_value():
    nullable = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64")})
    assert fp(nullable) == fp(pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64")}))
    assert fp(nullable) != fp(pd.DataFrame({"n": pd.array([1, 0, 3], dtype="Int64")}))
    stamps = pd.to_datetime(["2024-01-01 10:00", None]).tz_localize("Europe/Berlin")
    assert fp(pd.DataFrame({"t": stamps})) == fp(
        pd.DataFrame({"t": stamps.tz_convert("UTC").tz_convert("Europe/Berlin")})
    )
    assert fp(pd.DataFrame({"t": stamps})) != fp(pd.DataFrame({"t": stamps.tz_convert("UTC")}))  # dtype differs
    categories = pd.DataFrame({"c": pd.Categorical(["a", "b", "a"])})
    assert fp(categories) != fp(pd.DataFrame({"c": pd.Categorical(["a", "b", "b"])}))


def test_values_without_a_canonical_form_are_refused_naming_column_and_row():
    with pytest.raises(DataError, match=r"column 'tags', row 1, holds set"):
        fp({"tags": [["a"], {"b"}]})
    with pytest.raises(DataError, match=r"column 'x', row 0, holds object"):
        fp({"x": [object()]})


texts = st.lists(st.one_of(st.none(), st.text(max_size=4)), min_size=1, max_size=5)


@settings(max_examples=100, deadline=None)
@given(texts, texts)
def test_text_columns_match_exactly_when_their_values_do(a, b):
    assert (fp({"s": a}) == fp({"s": b})) == (a == b)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=5),
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=5),
)
def test_integer_columns_match_exactly_when_their_values_do(a, b):
    assert (fp({"n": a}) == fp({"n": b})) == (a == b)
