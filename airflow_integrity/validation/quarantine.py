"""Split validated data into the rows that may flow on and the rows to quarantine, with the reasons per row;
check where quarantined rows may go (a folder, in which every validation writes a new file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from airflow_integrity.validation.run import ValidationOutcome

REASONS_COLUMN = "_integrity_reasons"
QUARANTINE_FORMATS = ("csv", "jsonl", "parquet")
# Names that look like a file rather than a folder.
_FILE_SUFFIXES = frozenset({".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json"})


def check_quarantine_arguments(
    location: Any, file_format: str | None, *, argument: str = "quarantine_path"
) -> None:
    """Check a quarantine folder and file format, as far as that is possible before templates render.

    Args:
        location: A folder (local path, URI, ``ObjectStoragePath``), ``None`` for the configured default, or a
            template (checked once rendered).
        file_format: ``csv``, ``jsonl``, ``parquet`` or ``None`` (``csv``).
        argument: How the error names the location.

    Raises:
        ValueError: An unknown format, or a location that names a file: every validation writes a new file in
            the folder, so a fixed file name would be overwritten by the next run or try.
    """
    if file_format is not None and file_format.lower().lstrip(".") not in QUARANTINE_FORMATS:
        raise ValueError(f"quarantine_format={file_format!r} is not one of {', '.join(QUARANTINE_FORMATS)}.")
    if location is None:
        return
    text = location if isinstance(location, str) else str(location)
    if "{{" in text or "{%" in text:
        return
    name = PurePosixPath(text.rstrip("/") or "/")
    suffix = name.suffix.lower()
    if suffix in _FILE_SUFFIXES:
        fmt = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "jsonl")
        raise ValueError(
            f"{argument}={text!r} names a file. Quarantined rows go to a new file per validation (named after "
            "DAG, run, task and try) in a folder, and no file is ever overwritten: pass the folder "
            f"({argument}={str(name.parent)!r}) and quarantine_format={fmt!r}."
        )


@dataclass
class QuarantineSplit:
    """Good rows, bad rows and why.

    Args:
        good: Rows that satisfy every row-level expectation considered (original index kept).
        bad: The other rows, with a ``_integrity_reasons`` column (``"; "``-joined reasons).
        reasons: Per bad row position, the reasons (``"#<index> <type> on <columns>"``).
        total_rows: Rows in the validated data.
        unsplittable: Failed expectations that do not judge single rows (table-level or aggregate checks, or
            checks GX could not evaluate): removing rows cannot fix them, so the data as a whole failed.
        good_positions: Positions of the good rows, in order: select them from the data as it came in
            (:meth:`~airflow_integrity.validation.rows.TableRows.select`) to hand them on unchanged.
        bad_positions: Positions of the bad rows, in order.
    """

    good: pd.DataFrame
    bad: pd.DataFrame
    reasons: dict[int, list[str]]
    total_rows: int
    unsplittable: list[dict[str, Any]] = field(default_factory=list)
    good_positions: list[int] = field(default_factory=list)
    bad_positions: list[int] = field(default_factory=list)

    def reason_of(self, position: int) -> str:
        """The ``"; "``-joined reasons of the bad row at ``position``."""
        return "; ".join(self.reasons[position])

    @property
    def bad_fraction(self) -> float:
        """Bad rows / all rows (0.0 for empty data)."""
        return len(self.bad) / self.total_rows if self.total_rows else 0.0

    def summary(self) -> dict[str, Any]:
        """A JSON-serialisable account of the split."""
        return {
            "total_rows": self.total_rows,
            "good_rows": len(self.good),
            "bad_rows": len(self.bad),
            "bad_fraction": self.bad_fraction,
            "unsplittable": [
                {k: f[k] for k in ("index", "type", "severity") if k in f} for f in self.unsplittable[:20]
            ],
            "unsplittable_omitted": max(len(self.unsplittable) - 20, 0),
        }


def split_rows(
    outcome: ValidationOutcome,
    frame: pd.DataFrame | None = None,
    *,
    include_warnings: bool = False,
) -> QuarantineSplit:
    """Split the validated rows into good and bad.

    Every row that a row-level expectation of severity ``critical`` rejected is bad, including rows of an
    expectation that passed only thanks to ``mostly``: quarantine hands on rows that meet every condition.

    Args:
        outcome: The result of ``validate(..., collect_unexpected_rows=True)``.
        frame: The validated frame; defaults to ``outcome.frame``.
        include_warnings: Also quarantine rows rejected only by ``warning`` / ``info`` expectations.

    Raises:
        ValueError: The outcome has no row positions (validate without ``collect_unexpected_rows=True``) or no
            frame (an SQL query validated in the database).
    """
    import numpy as np

    if outcome.unexpected_rows is None:
        raise ValueError("split_rows needs row positions: call validate(..., collect_unexpected_rows=True).")
    data = outcome.frame if frame is None else frame
    if data is None:
        raise ValueError(
            "split_rows needs the validated rows: pass frame= (SQL validated in the database has none)."
        )
    rows = outcome.summary["data"].get("rows")
    if rows is not None and rows != len(data):
        raise ValueError(
            f"split_rows got a frame of {len(data)} rows for an outcome of {rows} rows; pass the frame validated."
        )
    severities = {"critical", "warning", "info"} if include_warnings else {"critical"}
    infos = {info.index: info for info in outcome.suite.expectations}
    reasons: dict[int, list[str]] = {}
    chunks = []
    for index, positions in sorted(outcome.unexpected_rows.items()):
        info = infos[index]
        if info.severity not in severities or not positions:
            continue
        reason = f"#{index} {info.type} on {', '.join(info.columns)}"
        chunks.append(np.asarray(positions, dtype=np.int64))
        for position in positions:
            reasons.setdefault(position, []).append(reason)
    mask = np.zeros(len(data), dtype=bool)
    if chunks:
        mask[np.concatenate(chunks)] = True
    bad_positions = np.flatnonzero(mask)
    bad = data.iloc[mask].copy()
    bad[REASONS_COLUMN] = ["; ".join(reasons[int(p)]) for p in bad_positions]
    unsplittable = [
        failure
        for failure in outcome.summary["failures"]
        if failure["severity"] in severities
        and (
            not infos[failure["index"]].row_level
            or "error" in failure
            or failure["index"] not in outcome.unexpected_rows
        )
    ]
    return QuarantineSplit(
        good=data.iloc[~mask],
        bad=bad,
        reasons=reasons,
        total_rows=len(data),
        unsplittable=unsplittable,
        good_positions=np.flatnonzero(~mask).tolist(),
        bad_positions=bad_positions.tolist(),
    )
