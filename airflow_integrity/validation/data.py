"""Turn what tasks hand each other into a pandas DataFrame, with errors that say what the data is instead.

Sources: an upstream task's return value (a DataFrame, a list of records, a dict of columns, JSON text), and a
file or object-store path (CSV, Parquet, JSON, JSON lines). The JSON body of an HTTP endpoint is found by
:mod:`airflow_integrity.validation.http_body`, SQL sources live in :mod:`airflow_integrity.validation.sql`.
pandas is imported only when a function here runs.

Each source gives two things: the typed DataFrame that Great Expectations checks, and the rows as they came in
(:class:`~airflow_integrity.validation.rows.TableRows`), which is what is handed on and quarantined, selected
by position. A file is read once, and both come from the same bytes: a CSV file's rows are each cell's text
(the bytes parsed a second time, as text), a JSON file's rows the text of each record, a Parquet file's the
values as stored. Nothing handed on goes through the frame.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_integrity.validation.errors import DataError, UnsupportedFormatError
from airflow_integrity.validation.json_text import JsonTable, lines_table, parse_table
from airflow_integrity.validation.json_text import decode as decode_json
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


def _parse_json(text: str | bytes, *, label: str) -> tuple[Any, JsonTable | None]:
    try:
        return parse_table(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        if isinstance(error, UnicodeDecodeError):
            raise DataError(f"{label} is bytes but not JSON text ({error}).") from None
        head = (text[:40].decode(errors="replace") if isinstance(text, bytes) else text[:40]).strip()
        raise DataError(
            f"{label} is text but not JSON ({error.msg} at line {error.lineno}, column "
            f"{error.colno}; starts with {head!r}). Pass JSON text, records, a DataFrame, or a "
            "pathlib.Path / ObjectStoragePath to read a file."
        ) from None


def _parse_json_text(text: str | bytes, *, label: str) -> Any:
    return _parse_json(text, label=label)[0]


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
    """Like :func:`frame_from_value`, and the rows as they came in, to hand on by position: the records,
    columns or frame given, or for JSON text the text of each record (the frame holds the parsed values).

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
        original = bytes(value) if isinstance(value, bytearray) else value
        value, table = _parse_json(original, label=label)
        label = f"{label} (JSON)"
        if table is not None:
            build = _frame_from_records if table.form != "columns" else _frame_from_columns
            return check_frame(build(value, label=label), label=label), TableRows(table, "json", original=original)
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


def _read(raw: bytes, fmt: str, compression: str | None, options: Mapping[str, Any], label: str) -> pd.DataFrame:
    import pandas as pd

    if fmt in ("csv", "tsv"):
        kwargs = {"sep": "\t"} if fmt == "tsv" else {}
        return pd.read_csv(io.BytesIO(raw), compression=compression, **{**kwargs, **options})
    if fmt == "parquet":
        return pd.read_parquet(io.BytesIO(raw), **options)
    if fmt == "jsonl":
        return pd.read_json(io.BytesIO(raw), lines=True, compression=compression, **options)
    return frame_from_value(pd.read_json(io.BytesIO(raw), compression=compression, **options), label=label)


# Reader options that type or convert cells: left out when a CSV file is read again as text.
_TYPING_OPTIONS = frozenset(
    {"dtype", "converters", "true_values", "false_values", "na_values", "keep_default_na", "na_filter"}
    | {"parse_dates", "date_format", "date_parser", "dayfirst", "cache_dates", "thousands", "decimal"}
    | {"dtype_backend", "index_col"}
)


def _csv_text_rows(raw: bytes, fmt: str, compression: str | None, options: Mapping[str, Any]) -> list[Any]:
    """The rows of a CSV file with each cell's text as the file has it (``""`` for an empty cell)."""
    import pandas as pd

    kwargs: dict[str, Any] = {"sep": "\t"} if fmt == "tsv" else {}
    kwargs.update({k: v for k, v in options.items() if k not in _TYPING_OPTIONS})
    text = pd.read_csv(
        io.BytesIO(raw), compression=compression, dtype=str, keep_default_na=False, na_filter=False, **kwargs
    )
    return [
        {str(k): v if isinstance(v, str) else None for k, v in row.items()}
        for row in text.to_dict(orient="records")
    ]


def _decompress(raw: bytes, compression: str | None) -> bytes:
    if compression is None:
        return raw
    if compression == "gzip":
        import gzip

        return gzip.decompress(raw)
    if compression == "bz2":
        import bz2

        return bz2.decompress(raw)
    if compression == "xz":
        import lzma

        return lzma.decompress(raw)
    if compression == "zip":
        import zipfile

        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise ValueError(f"a ZIP file must hold exactly one data file, not {len(names)}")
            return archive.read(names[0])
    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()


def _json_text(raw: bytes, compression: str | None, options: Mapping[str, Any]) -> str:
    data = _decompress(raw, compression)
    encoding = options.get("encoding")
    return data.decode(encoding) if encoding else decode_json(data)


def _parquet_values(raw: bytes, options: Mapping[str, Any]) -> list[Any]:
    """The rows of a Parquet file as pyarrow gives its stored values (pandas' index columns left out)."""
    import pandas as pd
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(raw), columns=options.get("columns"), filters=options.get("filters"))
    hidden = {c for c in (table.schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)}
    if hidden:
        table = table.select([name for name in table.column_names if name not in hidden])
    rows = table.to_pylist()
    for row in rows:  # pyarrow gives nanosecond timestamps as pandas Timestamps; XCom takes datetimes
        for key, value in row.items():
            if isinstance(value, pd.Timestamp) and value.nanosecond == 0:
                row[key] = value.to_pydatetime()
    return rows


def _rows_of_file(
    raw: bytes, fmt: str, compression: str | None, options: Mapping[str, Any], frame: pd.DataFrame, label: str
) -> TableRows:
    """The rows of a file as it holds them, read when first asked for; the frame's rows by position."""

    def aligned(rows: Any) -> Any:
        if len(rows) != len(frame):
            raise DataError(
                f"{label}: read as it is, the file has {len(rows)} rows, but {len(frame)} were validated; the "
                f"rows cannot be handed on as the file holds them. Check read_options {dict(options)}."
            )
        return rows

    if fmt in ("csv", "tsv"):
        return TableRows(kind="records", load=lambda: aligned(_csv_text_rows(raw, fmt, compression, options)))
    if fmt == "parquet":
        if importlib.util.find_spec("pyarrow") is None:  # fastparquet: the frame is all there is
            return TableRows(frame, "frame", read=True)
        return TableRows(kind="records", load=lambda: aligned(_parquet_values(raw, options)))
    if fmt == "jsonl":
        limit = options.get("nrows")
        return TableRows(
            kind="json", load=lambda: aligned(lines_table(_json_text(raw, compression, options), limit=limit))
        )
    _, table = parse_table(_json_text(raw, compression, options))
    if table is None:  # JSON pandas reads by read_options (e.g. orient="index"): the frame is all there is
        return TableRows(frame, "frame", read=True)
    return TableRows(aligned(table), "json")


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
    return table_from_path(path, file_format=file_format, read_options=read_options)[0]


def table_from_path(
    path: Any,
    *,
    file_format: str | None = None,
    read_options: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, TableRows]:
    """Like :func:`frame_from_path`, and the rows as the file holds them, to hand on by position.

    The file is read once; the frame that is validated and the rows that are handed on both come from those
    bytes. The rows: for CSV / TSV each cell's text (the file read a second time, as text, with the same
    ``read_options`` less those that type cells); for JSON and JSON lines the text of each record; for
    Parquet the values as stored (pyarrow).

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
            raw = target.read_bytes()
        else:
            if hasattr(path, "exists") and not path.exists():
                raise DataError(f"{label} does not exist in object storage; check the path and the upstream task.")
            with path.open("rb") as handle:
                raw = handle.read()
        if fmt == "json" and compression is None:
            return table_from_value(decode_json(raw), label=label)
        frame = check_frame(_read(raw, fmt, compression, options, label), label=label)
        return frame, _rows_of_file(raw, fmt, compression, options, frame, label)
    except DataError:
        raise
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{label} cannot be read as {fmt}: {type(exc).__name__}: {exc}") from None
