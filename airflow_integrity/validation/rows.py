"""The rows as they came in, kept beside the DataFrame that Great Expectations checks.

GX needs a DataFrame, but what a validation hands on (the good rows of a quarantine split, ``return_data``)
and what it quarantines must be what the upstream task or the source handed over, not a DataFrame round trip
of it: pandas turns an integer column with a null into floats (``9007199254740993`` becomes
``9007199254740992.0``, ``19`` becomes ``19.0``), and floats lose digits. :class:`TableRows` keeps the original
and selects rows of it by position (GX reports rejected rows by position in the frame, which are the
positions in the original):

- a list of records gives back the very record objects, a dict of columns the values of its lists, a
  DataFrame its own rows (``iloc``, index and dtypes kept);
- JSON text (handed over, or a JSON / JSON-lines file, or an HTTP body) gives back JSON text of the same form
  holding the selected records' own text (:mod:`~airflow_integrity.validation.json_text`): no number is ever
  parsed into a float or a ``Decimal``, which Airflow's XCom would turn into a float;
- a CSV file gives back one record per row holding each cell's text exactly as the file has it (``""`` for an
  empty cell), read a second time, as text, from the same bytes;
- an SQL query gives back the driver's values (``int``, ``Decimal``, ``datetime``, ...), fetched once;
- a Parquet file gives back the values as stored (read with pyarrow); only a frame the package read by other
  means (Parquet through fastparquet) is handed on as records of the frame's Python values.

A quarantine file holds the same: the rejected rows as they came in, plus the reasons (:meth:`TableRows.to_file`).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

    from airflow_integrity.validation.json_text import JsonTable

RowsKind = Literal["records", "columns", "frame", "json"]


class TableRows:
    """A table as it was given, and row selection by position.

    Args:
        value: A sequence of records (mappings), a mapping of columns (name -> sequence of values), a pandas
            DataFrame, or a :class:`~airflow_integrity.validation.json_text.JsonTable`.
        kind: ``records``, ``columns``, ``frame`` or ``json``.
        read: Whether the package read the frame itself by a means that keeps no other original (Parquet
            through fastparquet): then rows are handed on as records of the frame's Python values.
        load: Builds ``value`` when rows are first asked for (a file's cell text is parsed only when rows are
            handed on or quarantined).
        original: What is handed on when all rows are: the JSON text (``str`` or ``bytes``) as it came in.
    """

    def __init__(
        self,
        value: Any = None,
        kind: RowsKind = "records",
        *,
        read: bool = False,
        load: Callable[[], Any] | None = None,
        original: Any = None,
    ) -> None:
        self._value = value
        self._load = load
        self.kind: RowsKind = kind
        self.read = read
        self.original = original

    def __repr__(self) -> str:
        return f"TableRows(kind={self.kind!r}, read={self.read}, loaded={self._load is None})"

    @property
    def value(self) -> Any:
        """The rows as they came in (built on first use when a loader was given)."""
        if self._load is not None:
            self._value, self._load = self._load(), None
        return self._value

    def select(self, positions: Sequence[int] | None = None) -> Any:
        """The rows at ``positions`` (all rows when ``None``) in the form they came in.

        Records come back as a list of the original record objects, columns as a dict of lists of the original
        values, a frame as ``frame.iloc[positions]`` (the original index and dtypes), JSON as JSON text of the
        same form holding the selected records' own text (all rows: the text itself).
        """
        if positions is None:
            if self.original is not None:
                return self.original
            return self.value.text if self.kind == "json" else self.value
        value = self.value
        if self.kind == "records":
            return [value[int(p)] for p in positions]
        if self.kind == "columns":
            return {name: _pick(values, positions) for name, values in value.items()}
        if self.kind == "json":
            return value.select(positions)
        return value.iloc[list(positions)]

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
        value = self.value
        if self.kind == "records":
            rows = value if positions is None else [value[int(p)] for p in positions]
            return list(rows)
        if self.kind == "json":
            table: JsonTable = value
            return [table.values(p) for p in (range(len(table)) if positions is None else positions)]
        if self.kind == "columns":
            count = len(next(iter(value.values()), ()))
            chosen = range(count) if positions is None else [int(p) for p in positions]
            return [{name: _at(values, p) for name, values in value.items()} for p in chosen]
        frame = value if positions is None else value.iloc[list(positions)]
        return [{str(k): native(v, timestamps) for k, v in row.items()} for row in frame.to_dict(orient="records")]

    def to_file(self, positions: Sequence[int], file_format: str, column: str, extra: Sequence[str]) -> bytes:
        """The rows at ``positions`` as a ``csv``, ``jsonl`` or ``parquet`` file, each with one more column.

        The cells are the rows as they came in: a CSV file's cell text, the digits and text of JSON records
        (a JSON-lines file holds each record's own text, the column appended), an SQL driver's values.

        Args:
            positions: Row positions.
            file_format: ``csv``, ``jsonl`` or ``parquet``.
            column: The name of the added column (the reasons of a quarantine).
            extra: Its value for each row.

        Raises:
            ValueError: Parquet without pyarrow.
        """
        chosen = [int(p) for p in positions]
        if self.kind == "json":
            table: JsonTable = self.value
            if file_format == "csv":
                return records_csv([{**table.cells(p), column: e} for p, e in zip(chosen, extra, strict=True)])
            if file_format == "jsonl":
                lines = (table.record_text(p, {column: e}) + "\n" for p, e in zip(chosen, extra, strict=True))
                return "".join(lines).encode()
        records = [{**record, column: e} for record, e in zip(self.records(chosen), extra, strict=True)]
        if file_format == "csv":
            return records_csv(records)
        if file_format == "jsonl":
            return records_jsonl(records)
        if self.kind == "frame":
            frame = self.value.iloc[chosen].copy()
            frame[column] = list(extra)
        else:
            frame = object_frame(records)
        buffer = io.BytesIO()
        try:
            frame.to_parquet(buffer, index=False)
        except ImportError as exc:
            raise ValueError(
                f"Writing quarantined rows as Parquet needs pyarrow on the workers ({exc}); install it or use "
                "quarantine_format='csv'."
            ) from None
        return buffer.getvalue()


def _pick(values: Any, positions: Sequence[int]) -> Any:
    if hasattr(values, "iloc"):
        return values.iloc[list(positions)]
    return [values[int(p)] for p in positions]


def _at(values: Any, position: int) -> Any:
    return values.iloc[position] if hasattr(values, "iloc") else values[position]


def native(value: Any, timestamps: str) -> Any:
    """A cell of a frame as a Python value: ``None`` for every kind of null, ``datetime`` if asked (a pandas
    timestamp's nanoseconds are dropped then)."""
    import pandas as pd

    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp) and timestamps == "datetime":
        return value.to_pydatetime(warn=False)
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return native(value.item(), timestamps)
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
