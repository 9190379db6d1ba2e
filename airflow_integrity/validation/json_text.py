"""JSON text as a table whose rows keep their own text.

A JSON table (JSON text handed over by a task, a JSON or JSON-lines file, the body of an HTTP endpoint) is
parsed once: the values ``json.loads`` gives build the frame that Great Expectations checks, and the position
of every record in the text is kept. What is handed on is then the text of the selected records, never values
re-encoded from a frame or from floats: ``12345678901234567.89`` stays those digits, ``100.10`` keeps its zero.
Parsed numbers would not do: ``json`` makes floats of them, and Airflow's XCom serialisation turns a
``Decimal`` into a float as well, so only text reaches a downstream task digit for digit.

Three forms, each handed on in its own form: an array of records (``[{...},{...}]``), JSON lines (one record
per line), and an object of columns (``{"id": [...], "name": [...]}``). Selected rows are joined with ``,``
(array, columns) or ending in a newline each (lines); each record, key and value is the text that came in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

JsonForm = Literal["array", "lines", "columns"]
Span = tuple[int, int]
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _skip(text: str, index: int) -> int:
    return _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]


def _expect(text: str, index: int, what: str) -> json.JSONDecodeError:
    return json.JSONDecodeError(f"Expecting {what}", text, index)


@dataclass(frozen=True)
class Member:
    """One member of a JSON object: its key, the spans of key and value, the value, and the spans of the items
    of an array value (when asked for)."""

    key: str
    key_span: Span
    value: Any
    value_span: Span
    items: list[Span] | None = None


def array_items(text: str, start: int) -> tuple[list[Any], list[Span], int]:
    """The values of the JSON array at ``text[start] == "["``, the span of each, and the index after ``]``.

    Raises:
        json.JSONDecodeError: The text is not a JSON array there.
    """
    values: list[Any] = []
    spans: list[Span] = []
    index = _skip(text, start + 1)
    if text.startswith("]", index):
        return values, spans, index + 1
    while True:
        value, end = _DECODER.raw_decode(text, index)
        values.append(value)
        spans.append((index, end))
        index = _skip(text, end)
        if text.startswith(",", index):
            index = _skip(text, index + 1)
        elif text.startswith("]", index):
            return values, spans, index + 1
        else:
            raise _expect(text, index, "',' delimiter")


def object_members(text: str, start: int, *, split_arrays: bool = False) -> tuple[list[Member], int]:
    """The members of the JSON object at ``text[start] == "{"``, in order (a repeated key appears twice;
    ``json.loads`` keeps the last), and the index after ``}``.

    Args:
        text: The JSON text.
        start: Where the object starts.
        split_arrays: Also give the span of each item of a member whose value is an array.

    Raises:
        json.JSONDecodeError: The text is not a JSON object there.
    """
    members: list[Member] = []
    index = _skip(text, start + 1)
    if text.startswith("}", index):
        return members, index + 1
    while True:
        if not text.startswith('"', index):
            raise _expect(text, index, "property name enclosed in double quotes")
        key, key_end = _DECODER.raw_decode(text, index)
        colon = _skip(text, key_end)
        if not text.startswith(":", colon):
            raise _expect(text, colon, "':' delimiter")
        value_start = _skip(text, colon + 1)
        items: list[Span] | None = None
        if split_arrays and text.startswith("[", value_start):
            value, items, value_end = array_items(text, value_start)
        else:
            value, value_end = _DECODER.raw_decode(text, value_start)
        members.append(Member(key, (index, key_end), value, (value_start, value_end), items))
        index = _skip(text, value_end)
        if text.startswith(",", index):
            index = _skip(text, index + 1)
        elif text.startswith("}", index):
            return members, index + 1
        else:
            raise _expect(text, index, "',' delimiter")


@dataclass(frozen=True)
class JsonTable:
    """JSON text that holds a table, with the span of every record (or every column value).

    Args:
        text: The decoded text.
        form: ``array``, ``lines`` or ``columns``.
        spans: The span of each record (``array``, ``lines``).
        columns: Per column, the span of its key and the spans of its values (``columns``).
        as_bytes: The text came as bytes; selections are handed on as UTF-8 bytes then.
    """

    text: str
    form: JsonForm
    spans: list[Span] = field(default_factory=list)
    columns: list[tuple[Span, list[Span]]] = field(default_factory=list)
    as_bytes: bool = False

    def __len__(self) -> int:
        if self.form == "columns":
            return len(self.columns[0][1]) if self.columns else 0
        return len(self.spans)

    def _at(self, span: Span) -> str:
        return self.text[span[0] : span[1]]

    def select(self, positions: Sequence[int]) -> str | bytes:
        """The rows at ``positions`` as JSON text of the same form, each record, key and value as it came in."""
        chosen = [int(p) for p in positions]
        if self.form == "array":
            out = "[" + ",".join(self._at(self.spans[p]) for p in chosen) + "]"
        elif self.form == "lines":
            out = "".join(self._at(self.spans[p]) + "\n" for p in chosen)
        else:
            out = (
                "{"
                + ",".join(
                    f"{self._at(key)}:[" + ",".join(self._at(values[p]) for p in chosen) + "]"
                    for key, values in self.columns
                )
                + "}"
            )
        return out.encode() if self.as_bytes else out

    def cells(self, position: int) -> dict[str, Any]:
        """The row at ``position`` as cells for a CSV file: a string's value, ``None`` for null, and the JSON text
        of anything else (a number's own digits, ``true``, a nested object)."""
        if self.form == "columns":
            return {json.loads(self._at(key)): self._cell(values[int(position)]) for key, values in self.columns}
        span = self.spans[int(position)]
        members, _ = object_members(self.text, span[0])
        return {member.key: self._cell(member.value_span) for member in members}

    def _cell(self, span: Span) -> Any:
        text = self._at(span)
        if text.startswith('"'):
            return json.loads(text)
        return None if text == "null" else text

    def record_text(self, position: int, extra: dict[str, str]) -> str:
        """The record at ``position`` as one JSON object text, with ``extra`` members appended after its own."""
        added = ", ".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in extra.items())
        if self.form == "columns":
            members = [f"{self._at(key)}: {self._at(values[int(position)])}" for key, values in self.columns]
            return "{" + ", ".join([*members, added] if added else members) + "}"
        own = self._at(self.spans[int(position)])
        if not added:
            return own
        body = own[:-1].rstrip()  # a record is an object: its text ends with "}"
        return body + (", " if not body.endswith("{") else "") + added + "}"

    def values(self, position: int) -> dict[str, Any]:
        """The row at ``position`` parsed with every digit kept (``Decimal`` for numbers with a fraction)."""
        if self.form == "columns":
            return {
                json.loads(self._at(key)): json.loads(self._at(values[int(position)]), parse_float=Decimal)
                for key, values in self.columns
            }
        return dict(json.loads(self._at(self.spans[int(position)]), parse_float=Decimal))


def span_at(text: str, path: Sequence[str | int]) -> Span:
    """The span of the value that ``path`` (object keys, array positions) leads to in the JSON document ``text``
    (the last of repeated keys, as ``json.loads`` keeps it).

    Raises:
        json.JSONDecodeError: The text is not JSON. KeyError, IndexError: The path is not in it.
    """
    start = _skip(text, 0)
    end = len(text.rstrip(" \t\n\r"))
    for part in path:
        if isinstance(part, int):
            start, end = array_items(text, start)[1][part]
        else:
            members, _ = object_members(text, start)
            found = [member.value_span for member in members if member.key == part]
            if not found:
                raise KeyError(part)
            start, end = found[-1]
    return start, end


def decode(raw: str | bytes) -> str:
    """JSON bytes as text, in the encoding ``json.loads`` detects (UTF-8, -16 or -32, a UTF-8 BOM allowed)."""
    if isinstance(raw, str):
        return raw
    return raw.decode(json.detect_encoding(raw), "surrogatepass")


def parse_table(raw: str | bytes) -> tuple[Any, JsonTable | None]:
    """Parse JSON text (or JSON lines) once: the values ``json.loads`` gives, and the table's spans.

    Returns:
        The parsed value (a list of records, a dict of columns, or anything else JSON holds) and a
        :class:`JsonTable` when the value is a list of objects or an object of lists (``None`` otherwise: the
        caller says what the value is instead).

    Raises:
        json.JSONDecodeError: Neither JSON nor JSON lines (the error of parsing it as one JSON document).
    """
    text = decode(raw)
    as_bytes = not isinstance(raw, str)
    start = _skip(text, 0)
    try:
        value, table = _document(text, start, as_bytes)
    except json.JSONDecodeError as first_error:
        lines = _lines(text)
        if len(lines) < 2:
            raise
        try:
            values = [_line_value(text, span) for span in lines]
        except json.JSONDecodeError:
            raise first_error from None
        table = JsonTable(text, "lines", spans=lines, as_bytes=as_bytes)
        return values, table if all(isinstance(v, dict) for v in values) else None
    return value, table


def _document(text: str, start: int, as_bytes: bool) -> tuple[Any, JsonTable | None]:
    if text.startswith("[", start):
        values, spans, end = array_items(text, start)
        _end_of_document(text, end)
        table = JsonTable(text, "array", spans=spans, as_bytes=as_bytes)
        return values, table if all(isinstance(v, dict) for v in values) else None
    if text.startswith("{", start):
        members, end = object_members(text, start, split_arrays=True)
        _end_of_document(text, end)
        last = {member.key: member for member in members}
        value = {key: member.value for key, member in last.items()}
        if not last or any(member.items is None for member in last.values()):
            return value, None
        columns = [(member.key_span, member.items or []) for member in last.values()]
        return value, JsonTable(text, "columns", columns=columns, as_bytes=as_bytes)
    value = _DECODER.decode(text)
    return value, None


def _end_of_document(text: str, end: int) -> None:
    if _skip(text, end) != len(text):
        raise json.JSONDecodeError("Extra data", text, _skip(text, end))


def _lines(text: str) -> list[Span]:
    """The span of the JSON value on each line that is not blank (JSON lines; blank lines are skipped)."""
    spans: list[Span] = []
    for match in re.finditer(r"[^\n]+", text):
        start = _skip(text, match.start())
        end = match.end()
        while end > start and text[end - 1] in " \t\r":
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


def _line_value(text: str, span: Span) -> Any:
    value, stop = _DECODER.raw_decode(text, span[0])
    if stop != span[1]:
        raise json.JSONDecodeError("Extra data", text, stop)
    return value


def lines_table(raw: str | bytes, *, limit: int | None = None) -> JsonTable:
    """A JSON-lines file as a table: every line that is not blank is a record (the first ``limit`` only).

    Raises:
        json.JSONDecodeError: A line is not a JSON value (naming its line).
    """
    text = decode(raw)
    spans = _lines(text)[:limit] if limit is not None else _lines(text)
    for span in spans:
        if not isinstance(_line_value(text, span), dict):
            raise json.JSONDecodeError("Expecting an object (one record per line)", text, span[0])
    return JsonTable(text, "lines", spans=spans, as_bytes=False)
