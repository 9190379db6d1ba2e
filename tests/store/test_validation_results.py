"""A stored validation's summary as a listing reads it: its figures alone, the same as from the whole summary."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_integrity.store.validation_results import StoredValidationResult, _json

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_figure = st.none() | st.integers(min_value=0) | st.floats(allow_nan=True) | st.text(max_size=3)
_summaries = st.fixed_dictionaries(
    {},
    optional={
        "data": st.fixed_dictionaries({}, optional={"rows": _figure, "fingerprint": st.text(max_size=5)})
        | _json_values,
        "statistics": st.fixed_dictionaries(
            {}, optional={"evaluated_expectations": _figure, "unsuccessful_expectations": _figure}
        )
        | _json_values,
        "failures": st.lists(st.dictionaries(st.text(max_size=5), _json_values, max_size=3), max_size=3)
        | _json_values,
        "suite": _json_values,
    },
)


def _stored(summary: Any) -> StoredValidationResult:
    when = datetime(2026, 12, 5, tzinfo=UTC)
    return StoredValidationResult(
        "r-1", when, "passed", True, "s", "sha256:s", None, "d", "r", "t", -1, 1, _json(summary), {}
    )


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left) and math.isnan(right):
        return True
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    return type(left) is type(right) and left == right


@settings(max_examples=300, deadline=None)
@given(_summaries | _json_values)
def test_the_figures_read_alone_are_those_of_the_whole_summary(summary: Any) -> None:
    """Read alone (the listing's fast path), the figures equal those taken from the whole decoded summary (the
    path a summary holding NaN, or of a shape of its own, takes); no summary fails the listing."""
    alone = _stored(summary).figures
    whole = _stored(summary)
    assert isinstance(whole.summary, type(summary))  # the whole summary read first: figures come from it
    assert _same(alone, whole.figures), (alone, whole.figures)
    assert set(alone) == {"rows", "evaluated_expectations", "unsuccessful_expectations", "failures"}


def test_a_summary_is_read_once_and_kept() -> None:
    stored = _stored({"data": {"rows": 3}, "statistics": {"evaluated_expectations": 2}, "failures": []})
    assert stored.figures == {
        "rows": 3,
        "evaluated_expectations": 2,
        "unsuccessful_expectations": None,
        "failures": [],
    }
    assert stored.summary is stored.summary
    assert stored.identity == {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "try_number": 1}
