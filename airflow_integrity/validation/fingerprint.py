"""SHA-256 fingerprints of data: a canonical byte form of a DataFrame, fast enough for millions of rows.

Canonical form (version 1), fed to one SHA-256:

* a header: the JSON of ``{"v": 1, "rows": n, "columns": [[name, dtype], ...]}``;
* per column, in order: a ``0x1e`` byte, then numeric, boolean and datetime columns as their little-endian
  values (plus the null mask for nullable extension types); text columns as the UTF-8 of the values joined by
  NUL (plus the null mask); any other column as one canonical JSON value per row (mixed, nested, decimal,
  date values).

The index is not part of the fingerprint: the same rows handed over as records or as a frame match. Equal
frames always give equal fingerprints; the canonical form distinguishes dtypes (``1`` vs ``1.0``).

How it is computed does not change the digest: columns are turned into a few large buffers (numeric columns
are their own buffer, a text column is one join and one encode, with the NUL check done by numpy on the
encoded bytes), and for large frames a background thread feeds them to SHA-256 while the caller goes on
(hashlib releases the GIL for large buffers): :func:`start_frame_fingerprint` returns once every column is
serialised, so the hashing can overlap the validation itself.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
import queue
import threading
from typing import TYPE_CHECKING, Any

from airflow_integrity.validation.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

_VERSION = 1
_COLUMN_MARK = b"\x1e"
# Frames with at least this many cells are hashed by a background thread; smaller ones are not worth a thread.
_BACKGROUND_CELLS = 200_000
# Text values joined at a time, and rows of the JSON form handed to SHA-256 at a time.
_TEXT_CHUNK_ROWS = 4096
_JSON_CHUNK_ROWS = 65_536


class _Digest:
    """One SHA-256 fed in order, in the caller's thread or by a background thread.

    In the background, the caller's ``update`` only queues the buffer; the thread hashes the queue in order,
    without the GIL for large buffers. The caller must not change a queued buffer, and calls ``close`` when
    it has queued everything.
    """

    def __init__(self, *, background: bool) -> None:
        self._sha = hashlib.sha256()
        self._queue: queue.SimpleQueue[Any] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        if background:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._work, name="integrity-fingerprint", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        assert self._queue is not None
        while (data := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._sha.update(data)
                except BaseException as exc:  # re-raised by hexdigest(), in the caller's thread
                    self._error = exc

    def update(self, data: Any) -> None:
        if self._queue is None:
            self._sha.update(data)
        else:
            self._queue.put(data)

    def close(self) -> None:
        if self._queue is not None and self._thread is not None and self._thread.is_alive():
            self._queue.put(None)

    def hexdigest(self) -> str:
        if self._thread is not None:
            self.close()
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error
        return self._sha.hexdigest()


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


def _update_numeric(digest: _Digest, values: Any) -> None:
    import numpy as np

    array = np.ascontiguousarray(values)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    digest.update(array.view(np.uint8))


def _joined_text(values: Any) -> bytes | None:
    """The UTF-8 of the values joined by NUL if every one is a string without NUL; ``None`` otherwise.

    Args:
        values: An object ndarray (not changed).
    """
    import numpy as np

    parts = []
    try:
        # A few thousand values at a time: their objects stay in the CPU cache from list to join to free.
        for start in range(0, len(values), _TEXT_CHUNK_ROWS):
            parts.append(
                "\x00".join(values[start : start + _TEXT_CHUNK_ROWS].tolist()).encode("utf-8", "surrogatepass")
            )
    except TypeError:  # a null (None / NaN) or a non-string value
        return None
    data = b"\x00".join(parts)
    # UTF-8 writes NUL, and nothing else, as a zero byte: no value holds one iff the separators are all there are.
    zeros = len(data) - int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8)))
    return data if zeros == max(len(values) - 1, 0) else None


def _update_objects(digest: _Digest, column: pd.Series, where: str) -> None:
    values = column.to_numpy(dtype=object)  # may be the column's own array: never changed here
    data = _joined_text(values)
    mask = None
    if data is None:
        mask = column.isna().to_numpy()
        if mask.any():
            values = values.copy()
            values[mask] = ""
            data = _joined_text(values)
    if mask is not None and mask.any():
        digest.update(b"M")
        digest.update(mask.astype("u1").tobytes())
    if data is not None:
        digest.update(b"S%d:" % len(data))
        digest.update(data)
        return
    digest.update(b"J")
    lines: list[str] = []
    for position, value in enumerate(values.tolist()):
        null = mask is not None and mask[position]
        canonical = _canonical_value(None if null else value, f"{where}, row {position},")
        lines.append(json.dumps(canonical, sort_keys=True, separators=(",", ":")))
        if len(lines) == _JSON_CHUNK_ROWS:
            digest.update(("\n".join(lines) + "\n").encode())  # each value's JSON, then a newline
            lines = []
    if lines:
        digest.update(("\n".join(lines) + "\n").encode())


def _update_column(digest: _Digest, column: pd.Series, where: str) -> None:
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


class PendingFingerprint:
    """A frame's fingerprint whose hashing may still run in a background thread; :meth:`result` waits for it."""

    def __init__(self, digest: _Digest, rows: int, columns: int) -> None:
        self._digest = digest
        self._rows = rows
        self._columns = columns
        self._result: dict[str, Any] | None = None

    def result(self) -> dict[str, Any]:
        """``{"fingerprint": "sha256:<hex>", "kind": "content", "rows": n, "columns": n}``."""
        if self._result is None:
            self._result = {
                "fingerprint": f"sha256:{self._digest.hexdigest()}",
                "kind": "content",
                "rows": self._rows,
                "columns": self._columns,
            }
        return self._result


def start_frame_fingerprint(frame: pd.DataFrame, *, label: str = "data") -> PendingFingerprint:
    """Serialise a DataFrame into its canonical form and start hashing it.

    Returns once every column is serialised (so every :class:`DataError` is raised here); for large frames
    the hashing goes on in a background thread until ``result()`` is called.

    Args:
        frame: The data. It must not change until ``result()`` returns.
        label: How errors name the data.

    Raises:
        DataError: A cell holds a value that has no canonical form (not serialisable data).
    """
    digest = _Digest(background=len(frame) * len(frame.columns) >= _BACKGROUND_CELLS)
    try:
        header = {
            "v": _VERSION,
            "rows": len(frame),
            "columns": [[str(name), str(dtype)] for name, dtype in frame.dtypes.items()],
        }
        digest.update(json.dumps(header, separators=(",", ":")).encode())
        for position, name in enumerate(frame.columns):
            digest.update(_COLUMN_MARK)
            _update_column(digest, frame.iloc[:, position], f"{label}, column {str(name)!r}")
    finally:
        digest.close()
    return PendingFingerprint(digest, len(frame), len(frame.columns))


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
    return start_frame_fingerprint(frame, label=label).result()


def describe_fingerprint(parts: dict[str, Any]) -> dict[str, Any]:
    """Fingerprint data known only by its description (an SQL query validated in the database).

    Args:
        parts: JSON-serialisable identity of the data, e.g. dialect, database and query (no credentials).

    Returns:
        ``{"fingerprint": "sha256:<hex>", "kind": "query", ...}``: it names the query, not the rows it returned.
    """
    canonical = json.dumps({"v": _VERSION, **parts}, sort_keys=True, separators=(",", ":"), default=str)
    return {"fingerprint": f"sha256:{hashlib.sha256(canonical.encode()).hexdigest()}", "kind": "query"}
