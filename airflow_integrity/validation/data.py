"""Turn what tasks hand each other into a pandas DataFrame, with errors that say what the data is instead.

Sources: an upstream task's return value (a DataFrame, a list of records, a dict of columns, JSON text), a
file or object-store path (CSV, Parquet, JSON, JSON lines), and the parsed JSON body of an HTTP endpoint
(:func:`records_from_json_body`). SQL sources live in :mod:`airflow_integrity.validation.sql`. pandas is
imported only when a function here runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_integrity.validation.errors import DataError, UnsupportedFormatError
from airflow_integrity.validation.rows import TableRows

if TYPE_CHECKING:
    import pandas as pd

_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".zip": "zip"}
_SCALARS = (str, int, float, bool, type(None))


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    text = repr(value)
    kind = type(value).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return f"{article} {kind} ({text[:60] + '...' if len(text) > 60 else text})"


def is_path_like(value: Any) -> bool:
    """Whether ``value`` names a file: an ``os.PathLike`` or an object-store path with ``open()`` and a name."""
    if isinstance(value, os.PathLike):
        return True
    return callable(getattr(value, "open", None)) and isinstance(getattr(value, "name", None), str)


def check_frame(frame: pd.DataFrame, *, label: str = "data") -> pd.DataFrame:
    """Check a DataFrame can be validated: flat, unique column names.

    Raises:
        DataError: Naming the duplicated or nested column labels.
    """
    import pandas as pd

    if isinstance(frame.columns, pd.MultiIndex):
        raise DataError(f"{label} has multi-level column labels; flatten them (e.g. '_'.join) before validating.")
    duplicated = frame.columns[frame.columns.duplicated()].unique().tolist()
    if duplicated:
        raise DataError(
            f"{label} has duplicate column names {duplicated}; an expectation could not tell them apart. "
            "Rename or drop the duplicates."
        )
    return frame


def _frame_from_records(records: Sequence[Any], *, label: str) -> pd.DataFrame:
    import pandas as pd

    for position, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise DataError(
                f"{label} is a list, but element #{position} is {_describe(record)}; a table is a list of "
                "records with one dict per row (e.g. [{'id': 1, 'name': 'a'}, ...])."
            )
    return pd.DataFrame.from_records(list(records)) if records else pd.DataFrame()


def _frame_from_columns(columns: Mapping[Any, Any], *, label: str) -> pd.DataFrame:
    import pandas as pd

    lengths: dict[str, int] = {}
    for key, values in columns.items():
        if isinstance(values, (str, bytes)) or (
            not isinstance(values, (Sequence, pd.Series)) and not hasattr(values, "__array__")
        ):
            if all(isinstance(v, _SCALARS) for v in columns.values()):
                raise DataError(
                    f"{label} is a dict of scalars, which looks like one record, not a table; wrap it in a list "
                    "([record]) or give each column a list of values."
                )
            raise DataError(
                f"{label} is a dict, read as a dict of columns, but column {key!r} holds {_describe(values)} "
                "instead of a list of values."
            )
        lengths[str(key)] = len(values)
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}={n}" for k, n in list(lengths.items())[:10])
        raise DataError(
            f"{label} is a dict of columns of different lengths ({shown}); every column needs one value per row."
        )
    return pd.DataFrame(dict(columns))


def _parse_json_text(text: str | bytes, *, label: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as first_error:
        lines = [
            line for line in (text.decode() if isinstance(text, bytes) else text).splitlines() if line.strip()
        ]
        if len(lines) > 1:
            try:
                return [json.loads(line) for line in lines]
            except json.JSONDecodeError:
                pass
        head = (text[:40].decode(errors="replace") if isinstance(text, bytes) else text[:40]).strip()
        raise DataError(
            f"{label} is text but not JSON ({first_error.msg} at line {first_error.lineno}, column "
            f"{first_error.colno}; starts with {head!r}). Pass JSON text, records, a DataFrame, or a "
            "pathlib.Path / ObjectStoragePath to read a file."
        ) from None


def frame_from_value(value: Any, *, label: str = "data") -> pd.DataFrame:
    """Turn an in-memory value (what an upstream task returned) into a DataFrame.

    Args:
        value: A pandas DataFrame; a list of records (dicts); a dict of columns (name -> list of values); or
            JSON text / bytes holding either (JSON lines accepted).
        label: How error messages name the value, e.g. ``"return value of task 'extract'"``.

    Raises:
        DataError: When the value is not a table, naming what it is instead.
    """
    return table_from_value(value, label=label)[0]


def table_from_value(value: Any, *, label: str = "data") -> tuple[pd.DataFrame, TableRows]:
    """Like :func:`frame_from_value`, and the rows as they came in (JSON text parsed), to hand on by position.

    Raises:
        DataError: When the value is not a table, naming what it is instead.
    """
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return check_frame(value, label=label), TableRows(value, "frame")
    if isinstance(value, pd.Series):
        frame = value.to_frame()
        return check_frame(frame, label=label), TableRows(frame, "frame")
    if isinstance(value, (str, bytes, bytearray)):
        value = _parse_json_text(bytes(value) if isinstance(value, bytearray) else value, label=label)
        label = f"{label} (JSON)"
        if not isinstance(value, (list, dict)):
            raise DataError(
                f"{label} holds {_describe(value)}, not a table (a list of records or an object of columns)."
            )
    if isinstance(value, Mapping):
        return check_frame(_frame_from_columns(value, label=label), label=label), TableRows(value, "columns")
    if isinstance(value, Sequence):
        return check_frame(_frame_from_records(value, label=label), label=label), TableRows(value, "records")
    raise DataError(
        f"{label} is {_describe(value)}, not a table. Return a DataFrame, a list of dicts (one per row), "
        "a dict of columns or JSON text; to validate a file pass a pathlib.Path or ObjectStoragePath."
    )


def _format_of(name: str, file_format: str | None) -> tuple[str, str | None]:
    suffixes = [s.lower() for s in Path(name).suffixes]
    compression = _COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes = suffixes[:-1]
    if file_format:
        fmt = file_format.lower().lstrip(".")
        if fmt not in set(_FORMATS.values()):
            raise UnsupportedFormatError(
                f"File format {file_format!r} is not supported; use one of "
                f"{', '.join(sorted(set(_FORMATS.values())))}."
            )
        return fmt, compression
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in _FORMATS:
        raise UnsupportedFormatError(
            f"Cannot tell the format of {name!r} from its suffix {suffix or '(none)'!r}; name it .csv, .tsv, "
            ".parquet, .json or .jsonl (optionally compressed, e.g. .csv.gz), or pass file_format=."
        )
    return _FORMATS[suffix], compression


def _require_parquet_engine(name: str) -> None:
    if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
        raise UnsupportedFormatError(
            f"Reading the Parquet file {name!r} needs pyarrow (or fastparquet), which is not installed in this "
            "environment. Install it (pip install pyarrow) on the workers, or hand the data over as CSV/JSON."
        )


def _read(handle: Any, fmt: str, compression: str | None, options: Mapping[str, Any], label: str) -> pd.DataFrame:
    import pandas as pd

    if fmt in ("csv", "tsv"):
        kwargs = {"sep": "\t"} if fmt == "tsv" else {}
        return pd.read_csv(handle, compression=compression, **{**kwargs, **options})
    if fmt == "parquet":
        return pd.read_parquet(handle, **options)
    if fmt == "jsonl":
        return pd.read_json(handle, lines=True, compression=compression, **options)
    if compression:
        return frame_from_value(pd.read_json(handle, compression=compression, **options), label=label)
    raw = handle.read() if hasattr(handle, "read") else Path(handle).read_bytes()
    return frame_from_value(raw, label=label)


def frame_from_path(
    path: Any,
    *,
    file_format: str | None = None,
    read_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Read a local file or an object-store path (``ObjectStoragePath``, ``UPath``) into a DataFrame.

    Args:
        path: A ``str`` / ``os.PathLike`` local path, or a path object with ``open()`` (object storage).
        file_format: ``csv``, ``tsv``, ``parquet``, ``json`` or ``jsonl``; inferred from the suffix when omitted
            (a compression suffix such as ``.gz`` is recognised).
        read_options: Extra keyword arguments for the pandas reader (e.g. ``{"dtype": {"zip": str}}``).

    Raises:
        DataError: The file does not exist or cannot be parsed. UnsupportedFormatError: unknown format, or
            Parquet without pyarrow.
    """
    options = dict(read_options or {})
    name = str(path) if isinstance(path, (str, os.PathLike)) else str(getattr(path, "name", path))
    label = f"file {str(path)!r}"
    fmt, compression = _format_of(name, file_format)
    if fmt == "parquet":
        _require_parquet_engine(str(path))
    try:
        if isinstance(path, (str, os.PathLike)):
            target = Path(os.fspath(path)).expanduser()
            if not target.is_file():
                raise DataError(
                    f"{label} does not exist (or is not a file); check the path and the upstream task."
                )
            return check_frame(_read(str(target), fmt, compression, options, label), label=label)
        if hasattr(path, "exists") and not path.exists():
            raise DataError(f"{label} does not exist in object storage; check the path and the upstream task.")
        with path.open("rb") as handle:
            return check_frame(_read(handle, fmt, compression, options, label), label=label)
    except DataError:
        raise
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{label} cannot be read as {fmt}: {type(exc).__name__}: {exc}") from None


def records_from_json_body(body: Any, *, records_path: str | None = None) -> Any:
    """Find the table in the parsed JSON body of an HTTP response.

    Args:
        body: The parsed body (or its text). A list is taken as the records; an object of equal-length lists
            as columns; otherwise the one member that holds a list of objects (e.g. ``{"data": [...]}``).
        records_path: Dotted path to the records when the body holds several lists, e.g. ``"result.items"``
            (list positions as integers: ``"pages.0.rows"``).

    Returns:
        A list of records or a dict of columns, ready for :func:`frame_from_value`.

    Raises:
        DataError: The path does not exist, or no (or more than one) list of records is found.
    """
    if isinstance(body, (str, bytes, bytearray)):
        body = _parse_json_text(bytes(body) if isinstance(body, bytearray) else body, label="HTTP response body")
    if records_path:
        node: Any = body
        walked: list[str] = []
        for part in records_path.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
                node = node[int(part)]
            else:
                here = ".".join(walked) or "<body>"
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
            walked.append(part)
        return node
    if isinstance(body, list):
        return body
    if not isinstance(body, Mapping):
        raise DataError(f"HTTP response body is {_describe(body)}, not a table of records.")
    values = list(body.values())
    flat = all(isinstance(v, list) and not any(isinstance(x, (dict, list)) for x in v) for v in values)
    if values and flat and len({len(v) for v in values}) == 1:
        return dict(body)
    candidates = _record_lists(body, prefix="", depth=2)
    if len(candidates) == 1:
        return candidates[0][1]
    if not candidates:
        raise DataError(
            f"HTTP response body has no list of records (top-level keys: {sorted(body)[:20]}). "
            "Pass records_path= naming where the rows are."
        )
    raise DataError(
        f"HTTP response body holds several lists of records ({', '.join(p for p, _ in candidates[:10])}); "
        "pass records_path= to choose one."
    )


def _record_lists(node: Mapping[str, Any], *, prefix: str, depth: int) -> list[tuple[str, list[Any]]]:
    found: list[tuple[str, list[Any]]] = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            found.append((path, value))
        elif isinstance(value, Mapping) and depth > 1:
            found.extend(_record_lists(value, prefix=f"{path}.", depth=depth - 1))
    return found
