"""The rows as they came in, kept beside the DataFrame that Great Expectations checks.

GX needs a DataFrame, but what a validation hands on (the good rows of a quarantine split, ``return_data``)
and what it quarantines must be what the upstream task handed over, not a DataFrame round trip of it: pandas
turns an integer column with a null into floats (``9007199254740993`` becomes ``9007199254740992.0``), and a
JSON round trip rounds floats and truncates datetimes. :class:`TableRows` keeps the original value and selects
rows of it by position (GX reports rejected rows by position in the frame, which are the positions in the
original): a list of records gives back the very record objects, a dict of columns the values of its lists,
a DataFrame its own rows (``iloc``, index and dtypes kept).

A frame the package read itself (a file, an SQL query) has no other original; it is handed on as records of
Python values (``None`` for nulls, ``datetime`` for timestamps), with every digit of its numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

RowsKind = Literal["records", "columns", "frame"]


@dataclass(frozen=True)
class TableRows:
    """A table as it was given, and row selection by position.

    Args:
        value: A sequence of records (mappings), a mapping of columns (name -> sequence of values), or a
            pandas DataFrame. JSON text is kept parsed: its records are the values ``json.loads`` gives.
        kind: ``records``, ``columns`` or ``frame``.
        read: Whether the package read the frame itself (file, SQL): then rows are handed on as records.
    """

    value: Any
    kind: RowsKind
    read: bool = False

    def select(self, positions: Sequence[int] | None = None) -> Any:
        """The rows at ``positions`` (all rows when ``None``) in the form they came in.

        Records come back as a list of the original record objects, columns as a dict of lists of the original
        values, a frame as ``frame.iloc[positions]`` (the original index and dtypes).
        """
        if positions is None:
            return self.value
        if self.kind == "records":
            return [self.value[int(p)] for p in positions]
        if self.kind == "columns":
            return {name: _pick(values, positions) for name, values in self.value.items()}
        return self.value.iloc[list(positions)]

    def hand_on(self, positions: Sequence[int] | None = None) -> Any:
        """What flows downstream: :meth:`select`, except a frame the package read, which becomes records."""
        if self.kind == "frame" and self.read:
            return self.records(positions, timestamps="datetime")
        return self.select(positions)

    def records(
        self, positions: Sequence[int] | None = None, *, timestamps: Literal["keep", "datetime"] = "keep"
    ) -> list[Mapping[str, Any]]:
        """The rows at ``positions`` as one mapping per row: the original records themselves for records.

        Args:
            positions: Row positions (all rows when ``None``).
            timestamps: ``keep`` pandas timestamps (nanoseconds) or turn them into ``datetime``.
        """
        if self.kind == "records":
            rows = self.value if positions is None else self.select(positions)
            return list(rows)
        if self.kind == "columns":
            count = len(next(iter(self.value.values()), ()))
            chosen = range(count) if positions is None else [int(p) for p in positions]
            return [{name: _at(values, p) for name, values in self.value.items()} for p in chosen]
        frame = self.value if positions is None else self.select(positions)
        return [
            {str(k): _native(v, timestamps) for k, v in row.items()} for row in frame.to_dict(orient="records")
        ]


def _pick(values: Any, positions: Sequence[int]) -> Any:
    if hasattr(values, "iloc"):
        return values.iloc[list(positions)]
    return [values[int(p)] for p in positions]


def _at(values: Any, position: int) -> Any:
    return values.iloc[position] if hasattr(values, "iloc") else values[position]


def _native(value: Any, timestamps: str) -> Any:
    """A cell of a frame as a Python value: ``None`` for every kind of null, ``datetime`` if asked."""
    import pandas as pd

    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp) and timestamps == "datetime":
        return value.to_pydatetime(warn=False)
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return _native(value.item(), timestamps)
    return value


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback: ISO 8601 for dates and times (microseconds and offset kept), text otherwise."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bool, int, float, decimal.Decimal)):
        return str(value)
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        return json.dumps(value, default=json_default, ensure_ascii=False)
    return str(json_default(value))


def records_csv(records: Sequence[Mapping[str, Any]]) -> bytes:
    """Records as CSV: one column per key (first-seen order), exact numbers, ISO times, JSON for nested values."""
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(str(key) for key in record))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        cells = {str(key): value for key, value in record.items()}
        writer.writerow([_cell(cells.get(name)) for name in columns])
    return buffer.getvalue().encode()


def records_jsonl(records: Sequence[Mapping[str, Any]]) -> bytes:
    """Records as JSON lines (ISO times; numbers as Python writes them, every digit kept)."""
    return b"".join(
        json.dumps(dict(record), default=json_default, ensure_ascii=False).encode() + b"\n" for record in records
    )


def object_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Records as a DataFrame of ``object`` columns, so no value is coerced (e.g. an int beside a null)."""
    import pandas as pd

    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(str(key) for key in record))
    cells = [{str(key): value for key, value in record.items()} for record in records]
    return pd.DataFrame(
        {name: pd.Series([row.get(name) for row in cells], dtype=object) for name in columns},
        index=range(len(cells)),
    )
