"""Find the table in the JSON body of an HTTP response.

:func:`records_from_json_body` gives the parsed records; :func:`records_text_from_json_body` gives the text of
the same part of the body, exactly as the endpoint sent it, which is what a validation of the endpoint
validates (parsed) and hands on (as text: see :mod:`airflow_integrity.validation.json_text`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_integrity.validation.data import _describe, _parse_json_text
from airflow_integrity.validation.errors import DataError
from airflow_integrity.validation.json_text import decode, span_at

PathPart = str | int
_LABEL = "HTTP response body"


def records_from_json_body(body: Any, *, records_path: str | None = None) -> Any:
    """Find the table in the parsed JSON body of an HTTP response.

    Args:
        body: The parsed body (or its text). A list is taken as the records; an object of equal-length lists
            as columns; otherwise the one member that holds a list of objects (e.g. ``{"data": [...]}``).
        records_path: Dotted path to the records when the body holds several lists, e.g. ``"result.items"``
            (list positions as integers: ``"pages.0.rows"``).

    Returns:
        A list of records or a dict of columns, ready for :func:`~airflow_integrity.validation.frame_from_value`.

    Raises:
        DataError: The path does not exist, or no (or more than one) list of records is found.
    """
    if isinstance(body, (str, bytes, bytearray)):
        body = _parse_json_text(bytes(body) if isinstance(body, bytearray) else body, label=_LABEL)
    return _find(body, records_path)[0]


def records_text_from_json_body(body: str | bytes, *, records_path: str | None = None) -> str:
    """Like :func:`records_from_json_body`, but the text of the records (or columns) as the body holds it.

    Raises:
        DataError: The body is not JSON, the path does not exist, or no (or more than one) list of records is
            found.
    """
    try:
        text = decode(body)
    except UnicodeDecodeError as exc:
        raise DataError(f"{_LABEL} is not JSON text ({exc}).") from None
    _, parts = _find(_parse_json_text(text, label=_LABEL), records_path)
    start, end = span_at(text, parts)
    return text[start:end]


def _find(body: Any, records_path: str | None) -> tuple[Any, list[PathPart]]:
    """The records and the path to them (keys and list positions; empty: the body itself)."""
    if records_path:
        node: Any = body
        walked: list[PathPart] = []
        for part in records_path.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
                walked.append(part)
            elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
                node = node[int(part)]
                walked.append(int(part))
            else:
                here = ".".join(map(str, walked)) or "<body>"
                keys = (
                    sorted(node)[:20]
                    if isinstance(node, Mapping)
                    else f"a list of {len(node)}"
                    if isinstance(node, list)
                    else _describe(node)
                )
                raise DataError(
                    f"records_path {records_path!r}: {here} has no {part!r} (it has {keys}). Fix records_path."
                )
        return node, walked
    if isinstance(body, list):
        return body, []
    if not isinstance(body, Mapping):
        raise DataError(f"{_LABEL} is {_describe(body)}, not a table of records.")
    values = list(body.values())
    flat = all(isinstance(v, list) and not any(isinstance(x, (dict, list)) for x in v) for v in values)
    if values and flat and len({len(v) for v in values}) == 1:
        return dict(body), []
    candidates = _record_lists(body, prefix=[], depth=2)
    if len(candidates) == 1:
        return candidates[0][1], candidates[0][0]
    if not candidates:
        raise DataError(
            f"{_LABEL} has no list of records (top-level keys: {sorted(body)[:20]}). "
            "Pass records_path= naming where the rows are."
        )
    shown = ", ".join(".".join(map(str, p)) for p, _ in candidates[:10])
    raise DataError(f"{_LABEL} holds several lists of records ({shown}); pass records_path= to choose one.")


def _record_lists(
    node: Mapping[str, Any], *, prefix: list[PathPart], depth: int
) -> list[tuple[list[PathPart], Any]]:
    found: list[tuple[list[PathPart], Any]] = []
    for key, value in node.items():
        path = [*prefix, key]
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            found.append((path, value))
        elif isinstance(value, Mapping) and depth > 1:
            found.extend(_record_lists(value, prefix=path, depth=depth - 1))
    return found
