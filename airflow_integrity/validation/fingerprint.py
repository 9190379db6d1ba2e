"""SHA-256 fingerprints of data: a canonical byte form of a DataFrame, fast enough for millions of rows.

Canonical form (version 1), fed to one SHA-256:

* a header: the JSON of ``{"v": 1, "rows": n, "columns": [[name, dtype], ...]}``;
* per column, in order: numeric, boolean and datetime columns as their little-endian values (plus the null
  mask for nullable extension types); text columns as the UTF-8 of the values joined by NUL (plus the null
  mask); any other column as one canonical JSON value per row (mixed, nested, decimal, date values).

The index is not part of the fingerprint: the same rows handed over as records or as a frame match. Equal
frames always give equal fingerprints; the canonical form distinguishes dtypes (``1`` vs ``1.0``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

from airflow_integrity.validation.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

_VERSION = 1
_COLUMN_MARK = b"\x1e"


def _canonical_value(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return {type(value).__name__: value.isoformat()}
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [_canonical_value(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical_value(v, where) for k, v in value.items()}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy":
        return _canonical_value(item(), where)
    isoformat = getattr(value, "isoformat", None)  # pandas Timestamp / Timedelta
    if callable(isoformat):
        if value != value:  # NaT
            return None
        return {type(value).__name__: isoformat()}
    raise DataError(
        f"{where} holds {type(value).__name__} {str(value)[:40]!r}, which is not serialisable data (not a string, "
        "number, boolean, date, decimal, list or dict). Convert it (e.g. str(), list()) before handing it on."
    )


def _update_numeric(digest: Any, values: Any) -> None:
    import numpy as np

    array = np.ascontiguousarray(values)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    digest.update(array.view(np.uint8))


def _join_text(values: Any) -> str | None:
    """NUL-join the values if every one is a string without NUL; ``None`` otherwise."""
    try:
        joined = "\x00".join(values)
    except TypeError:  # a null (None / NaN) or a non-string value
        return None
    return joined if joined.count("\x00") == max(len(values) - 1, 0) else None


def _update_objects(digest: Any, column: pd.Series, where: str) -> None:
    items = column.to_numpy(dtype=object).tolist()  # joining a list is about twice as fast as an ndarray
    joined = _join_text(items)
    mask = None
    if joined is None:
        mask = column.isna().to_numpy()
        if mask.any():
            for position in mask.nonzero()[0].tolist():
                items[position] = ""
            joined = _join_text(items)
    if mask is not None and mask.any():
        digest.update(b"M")
        digest.update(mask.astype("u1").tobytes())
    if joined is not None:
        data = joined.encode("utf-8", "surrogatepass")
        digest.update(b"S%d:" % len(data))
        digest.update(data)
        return
    digest.update(b"J")
    for position, value in enumerate(items):
        null = mask is not None and mask[position]
        canonical = _canonical_value(None if null else value, f"{where}, row {position},")
        digest.update(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode())
        digest.update(b"\n")


def _update_column(digest: Any, column: pd.Series, where: str) -> None:
    import pandas as pd

    dtype = column.dtype
    kind = getattr(dtype, "kind", "O")
    if isinstance(dtype, pd.CategoricalDtype):
        _update_numeric(digest, column.cat.codes.to_numpy())
        _update_column(digest, pd.Series(column.cat.categories), f"{where} (categories)")
    elif isinstance(dtype, pd.DatetimeTZDtype):
        _update_numeric(digest, column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy())
    elif type(dtype).__module__.startswith("numpy") and kind in "biufcmM":
        _update_numeric(digest, column.to_numpy())
    elif kind in "biuf" and hasattr(dtype, "numpy_dtype"):  # nullable extension types: Int64, Float64, boolean
        mask = column.isna().to_numpy()
        digest.update(mask.astype("u1").tobytes())
        _update_numeric(digest, column.to_numpy(dtype=dtype.numpy_dtype, na_value=0))
    else:
        _update_objects(digest, column, where)


def frame_fingerprint(frame: pd.DataFrame, *, label: str = "data") -> dict[str, Any]:
    """Fingerprint a DataFrame.

    Args:
        frame: The data.
        label: How errors name the data.

    Returns:
        ``{"fingerprint": "sha256:<hex>", "kind": "content", "rows": n, "columns": n}``.

    Raises:
        DataError: A cell holds a value that has no canonical form (not serialisable data).
    """
    digest = hashlib.sha256()
    header = {
        "v": _VERSION,
        "rows": len(frame),
        "columns": [[str(name), str(dtype)] for name, dtype in frame.dtypes.items()],
    }
    digest.update(json.dumps(header, separators=(",", ":")).encode())
    for position, name in enumerate(frame.columns):
        digest.update(_COLUMN_MARK)
        _update_column(digest, frame.iloc[:, position], f"{label}, column {str(name)!r}")
    return {
        "fingerprint": f"sha256:{digest.hexdigest()}",
        "kind": "content",
        "rows": len(frame),
        "columns": len(frame.columns),
    }


def describe_fingerprint(parts: dict[str, Any]) -> dict[str, Any]:
    """Fingerprint data known only by its description (an SQL query validated in the database).

    Args:
        parts: JSON-serialisable identity of the data, e.g. dialect, database and query (no credentials).

    Returns:
        ``{"fingerprint": "sha256:<hex>", "kind": "query", ...}``: it names the query, not the rows it returned.
    """
    canonical = json.dumps({"v": _VERSION, **parts}, sort_keys=True, separators=(",", ":"), default=str)
    return {"fingerprint": f"sha256:{hashlib.sha256(canonical.encode()).hexdigest()}", "kind": "query"}
