"""Export of the audit trail for reviewers, as JSON Lines or CSV, stating whether the chain verified.

Every export first chains the events recorded and not chained yet, so that it holds every event recorded
before it began, verifies the whole chain (:func:`airflow_integrity.store.audit.verify.verify`) and then
writes the matching events up to the head it verified:

JSON Lines
    a first line ``{"record": "audit_export", "verified": ..., "verification": {...}, "filters": {...}}``,
    one line per event, and a last line ``{"record": "end", "events": N}``. An event's line is its canonical
    body, as hashed, with ``record`` (``"event"``), ``seq``, ``verified``, ``prev_hash`` and ``hash`` added at
    its end; a body that is not an event's JSON (a damaged row, after the first bad seq) is written as
    ``{"record": "event", "seq": N, "verified": false, "unreadable_body": "..."}``.
CSV
    a first line ``# airflow-integrity audit export: chain VERIFIED ...`` (or ``NOT VERIFIED``, with the first
    bad sequence number and the reason), a header row, one row per event (its details as their canonical JSON,
    the text the hash covers), and a last line ``# end ...``.

Each event carries ``verified``: whether it lies before the first sequence number that cannot be trusted.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import (
    AuditEventError,
    AuditRecord,
    canonical_json,
    format_timestamp,
    to_timestamp,
)
from airflow_integrity.store.audit.query import EventFilter, rows_of, stream, stream_rows
from airflow_integrity.store.audit.verify import VerifyResult, verify

if TYPE_CHECKING:
    from airflow_integrity.store.audit.signing import CheckpointKey
    from airflow_integrity.store.store import IntegrityStore

FORMATS = ("jsonl", "csv")
# How every canonical event body begins (its first key in sorted order).
CANONICAL_START = '{"actor":'
CSV_COLUMNS = (
    "seq",
    "recorded_at",
    "event_type",
    "actor",
    "business_key",
    "dag_id",
    "dag_version",
    "bundle_version",
    "run_id",
    "task_id",
    "map_index",
    "try_number",
    "details",
    "event_id",
    "verified",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export` wrote."""

    verification: VerifyResult
    events: int
    filters: dict[str, str]


def iter_records(
    store: IntegrityStore,
    *,
    business_key: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    max_seq: int | None = None,
    with_runs: bool = True,
) -> Iterator[tuple[int, AuditRecord | str]]:
    """Matching events in sequence order, as ``(seq, record)``; a body that is not an event's JSON is
    yielded as its raw text. ``since`` is inclusive, ``until`` exclusive (times in UTC). With a business
    key and ``with_runs``, the unkeyed events of the DAG runs that recorded the key are included too."""
    where = EventFilter(
        business_key=business_key, dag_id=dag_id, run_id=run_id, since=since, until=until, story=with_runs
    )
    for row in stream(store, where, max_seq=max_seq):
        yield row.seq, row.record if row.record is not None else str(row.raw)


def export(
    store: IntegrityStore,
    fmt: str = "jsonl",
    *,
    out: TextIO,
    business_key: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    key: CheckpointKey | Sequence[CheckpointKey] | None = None,
    with_runs: bool = True,
) -> ExportSummary:
    """Chain pending events, verify the chain, then write the matching events to ``out`` with the verification
    status.

    Args:
        store: The integrity store.
        fmt: ``"jsonl"`` or ``"csv"``.
        out: A text stream (for CSV, open files with ``newline=""``).
        business_key: Only events for this business key, across all DAGs and runs ("everything about claim 42"):
            the events recorded with the key and, with ``with_runs``, the events without a business key of the runs
            that recorded it (task states, approvals, the run's outcome).
        dag_id: Only events of this DAG.
        run_id: Only events of this DAG run.
        since: Only events recorded at or after this time (UTC when no time zone is given).
        until: Only events recorded before this time.
        key: Checkpoint key(s), so that the verification covers the checkpoint signatures.
        with_runs: See ``business_key``.
    """
    where = EventFilter(
        business_key=business_key, dag_id=dag_id, run_id=run_id, since=since, until=until, story=with_runs
    )
    lines = export_lines(store, fmt, where=where, key=key)
    for line in lines:
        out.write(line)
    return ExportSummary(verification=lines.verification, events=lines.events, filters=lines.filters)


class ExportLines:
    """The lines of an export, produced as they are iterated (one database cursor, constant memory).

    The chain is verified when this object is made, so :attr:`verification` and :attr:`filters` are known
    before the first line; :attr:`events` counts the events written so far.
    """

    def __init__(
        self,
        store: IntegrityStore,
        fmt: str,
        where: EventFilter,
        key: CheckpointKey | Sequence[CheckpointKey] | None,
    ) -> None:
        if fmt not in FORMATS:
            raise AuditEventError(f"Export format {fmt!r} is not supported; use one of {', '.join(FORMATS)}.")
        self.fmt = fmt
        self.filters = {
            name: str(value)
            for name, value in (
                ("business_key", where.business_key),
                ("dag_id", where.dag_id),
                ("run_id", where.run_id),
                ("since", to_timestamp(where.since, "since")),
                ("until", to_timestamp(where.until, "until")),
            )
            if value is not None
        }
        if where.readable_dags is not None or not where.without_dag:
            self.filters["limited_to"] = "the DAGs the exporting user may read"
        AuditLog(store).chain_pending()
        self.verification = verify(store, key=key)
        self.events = 0
        result = self.verification
        self._trusted_below = None if result.ok else result.first_bad_seq
        self._rows = stream_rows(store, where, max_seq=result.head_seq if result.ok else None)

    def __iter__(self) -> Iterator[str]:
        return self._jsonl() if self.fmt == "jsonl" else self._csv()

    def _jsonl(self) -> Iterator[str]:
        result = self.verification
        header = {
            "record": "audit_export",
            "format_version": 1,
            "verified": result.ok,
            "summary": _status_line(result, self.filters),
            "verification": result.as_dict(),
            "filters": self.filters,
            "exported_at": format_timestamp(datetime.now(UTC)),
        }
        yield json.dumps(header, ensure_ascii=False) + "\n"
        for row in rows_of(self._rows):
            self.events += 1
            verified = _verified(row.seq, self._trusted_below)
            body = row.body
            if verified and body.startswith(CANONICAL_START) and body.endswith("}"):
                # A verified body is the canonical JSON the store hashed: written as it is, not re-encoded.
                yield (
                    f'{body[:-1]},"record":"event","seq":{row.seq},"verified":true,'
                    f'"prev_hash":"{row.prev_hash}","hash":"{row.hash}"}}\n'
                )
                continue
            line = (
                {**row.record.as_dict(), "record": "event", "verified": verified}
                if row.record is not None
                else {"record": "event", "seq": row.seq, "verified": False, "unreadable_body": row.raw}
            )
            yield json.dumps(line, ensure_ascii=False) + "\n"
        yield json.dumps({"record": "end", "events": self.events, "verified": result.ok}) + "\n"

    def _csv(self) -> Iterator[str]:
        result = self.verification
        yield f"# {_status_line(result, self.filters)}\n"
        # A writer whose "file" hands each row back: writerow returns the row's line (no buffer to reset).
        line = csv.writer(_Line(), lineterminator="\n").writerow
        yield line(CSV_COLUMNS)
        for row in rows_of(self._rows):
            content = row.content
            if content is not None:
                yield line(
                    (
                        row.seq,
                        format_timestamp(content.recorded_at),
                        content.event_type,
                        content.actor,
                        content.business_key,
                        content.dag_id,
                        content.dag_version,
                        content.bundle_version,
                        content.run_id,
                        content.task_id,
                        content.map_index,
                        content.try_number,
                        canonical_json(content.details),
                        content.event_id,
                        _verified(row.seq, self._trusted_below),
                        row.prev_hash,
                        row.hash,
                    )
                )
            else:
                yield line((row.seq, *[""] * 11, row.raw, "", False, "", ""))
            self.events += 1
        yield f"# end of export: {self.events} events; chain {'VERIFIED' if result.ok else 'NOT VERIFIED'}\n"


class _Line:
    """The "file" of a CSV writer that writes one row at a time: each write returns the row's text."""

    @staticmethod
    def write(text: str) -> str:
        return text


def export_lines(
    store: IntegrityStore,
    fmt: str = "jsonl",
    *,
    where: EventFilter,
    key: CheckpointKey | Sequence[CheckpointKey] | None = None,
) -> ExportLines:
    """Verify the chain, then return the export's lines for the events ``where`` selects (see :func:`export`)."""
    return ExportLines(store, fmt, where, key)


def _verified(seq: int, trusted_below: int | None) -> bool:
    return trusted_below is None or seq < trusted_below


def _status_line(result: VerifyResult, filters: dict[str, str]) -> str:
    scope = "; ".join(f"{k}={v}" for k, v in filters.items()) or "all events"
    if result.ok:
        status = f"chain VERIFIED: {result.count} events, head seq {result.head_seq}, head hash {result.head_hash}"
    else:
        status = f"chain NOT VERIFIED: first bad seq {result.first_bad_seq}: {result.reason}: {result.detail}"
    return f"airflow-integrity audit export: {status}; exported: {scope}"
