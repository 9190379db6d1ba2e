"""An archive of the audit trail up to a signed checkpoint, that anyone with the key checks without the store.

The trail is never deleted: the store refuses UPDATE, DELETE and TRUNCATE. An archive is a copy for off-site
retention and for an inspector: every event from the first up to a checkpoint the key verifies, exactly as
stored (body, previous hash, hash), and the signed checkpoint itself. :func:`check_archive` recomputes each
link from the genesis hash, compares the last with the checkpoint's head hash and verifies the checkpoint's
signature, so an archive proves itself complete and unaltered up to that point.

Format (JSON Lines, ``format_version`` 1): a first line ``{"record": "audit_archive", "store_id", "checkpoint":
{...}, "events": N}``; one line per event ``{"record": "event", "seq", "prev_hash", "hash", "body"}`` (the
body as the text that was hashed); a last line ``{"record": "end", "events": N}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TextIO

from airflow_integrity.store.audit.chain import AuditLog
from airflow_integrity.store.audit.event import GENESIS_HASH, AuditChainError, chain_hash
from airflow_integrity.store.audit.query import EventFilter, stream_rows
from airflow_integrity.store.audit.signing import Checkpoint, CheckpointKey, list_checkpoints, store_id
from airflow_integrity.store.audit.verify import verify

if TYPE_CHECKING:
    from airflow_integrity.store.store import IntegrityStore

FORMAT_VERSION = 1
_EVENT_KEYS = frozenset({"record", "seq", "prev_hash", "hash", "body"})
_END_KEYS = frozenset({"record", "events"})


@dataclass(frozen=True)
class ArchiveCheck:
    """What :func:`check_archive` found: ``ok``, the events and checkpoint it covers, or the first problem."""

    ok: bool
    events: int
    through_seq: int | None
    line: int | None = None  # 1-based line of the first problem
    reason: str | None = None
    checkpoint: Checkpoint | None = None

    def summary(self) -> str:
        if self.ok and self.checkpoint is not None:
            signed = (
                f"signed {self.checkpoint.created_at} by {self.checkpoint.algorithm} key {self.checkpoint.key_id}"
            )
            complete = f"complete up to the checkpoint at seq {self.through_seq} ({signed})"
            return f"archive VERIFIED: {self.events} events, {complete}"
        return f"archive NOT VERIFIED: line {self.line}: {self.reason}"


def write_archive(store: IntegrityStore, out: TextIO, keys: CheckpointKey | Sequence[CheckpointKey]) -> int:
    """Write every event up to the newest checkpoint the key(s) verify, and that checkpoint; return the count.

    Raises:
        AuditChainError: The chain does not verify, or no checkpoint signed by the key(s) exists yet.
    """
    candidates = [keys] if isinstance(keys, CheckpointKey) else list(keys)
    AuditLog(store).chain_pending()
    result = verify(store, key=candidates)
    if not result.ok:
        raise AuditChainError(f"Not archiving: the audit chain does not verify ({result.summary()}).")
    with store.read() as conn:
        identity = store_id(conn)
        signed = [c for c in list_checkpoints(conn) if any(c.signed_by(key, identity) for key in candidates)]
    if not signed:
        raise AuditChainError(
            "Not archiving: no checkpoint signed by the key exists yet. Sign one first "
            "(`airflow integrity audit checkpoint`); the archive ends at it, so that it can be checked."
        )
    checkpoint = signed[-1]
    header = {
        "record": "audit_archive",
        "format_version": FORMAT_VERSION,
        "store_id": identity,
        "checkpoint": asdict(checkpoint),
        "events": checkpoint.seq,
    }
    out.write(json.dumps(header, sort_keys=True) + "\n")
    count = 0
    for seq, body, prev_hash, hash_ in stream_rows(store, EventFilter(), max_seq=checkpoint.seq):
        line = {"record": "event", "seq": seq, "prev_hash": prev_hash, "hash": hash_, "body": body}
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        count += 1
    out.write(json.dumps({"record": "end", "events": count}) + "\n")
    return count


def check_archive(lines: Iterable[str], keys: CheckpointKey | Sequence[CheckpointKey]) -> ArchiveCheck:
    """Check an archive on its own: every link from the genesis hash, its end at the checkpoint, the signature."""
    candidates = [keys] if isinstance(keys, CheckpointKey) else list(keys)
    numbered = _records(lines)
    try:
        number, header = next(numbered)
    except StopIteration:
        return ArchiveCheck(False, 0, None, 1, "the file is empty")
    except _BadLine as exc:
        return ArchiveCheck(False, 0, None, exc.line, str(exc))
    if header.get("record") != "audit_archive" or header.get("format_version") != FORMAT_VERSION:
        return ArchiveCheck(False, 0, None, number, "not an audit archive of format version 1")
    try:
        checkpoint = Checkpoint(**header["checkpoint"])
        identity = str(header["store_id"])
    except (KeyError, TypeError) as exc:
        return ArchiveCheck(False, 0, None, number, f"the header's checkpoint is malformed ({exc})")
    if not any(checkpoint.signed_by(key, identity) for key in candidates):
        return ArchiveCheck(False, 0, None, number, "the checkpoint's signature does not verify with the key")
    if set(header) != {"record", "format_version", "store_id", "checkpoint", "events"}:
        return ArchiveCheck(False, 0, None, number, "the header has other fields than an archive's")
    if header["events"] != checkpoint.seq:
        return ArchiveCheck(False, 0, None, number, "the header's event count is not the checkpoint's")
    prev, count, end = GENESIS_HASH, 0, None
    try:
        for number, record in numbered:
            if end is not None:
                return ArchiveCheck(False, count, None, number, "a line after the end line")
            if record.get("record") == "end":
                if set(record) != _END_KEYS:
                    return ArchiveCheck(False, count, None, number, "the end line has other fields than an end's")
                end = record
                continue
            seq = count + 1
            problem = _link_problem(record, seq, prev)
            if problem:
                return ArchiveCheck(False, count, None, number, problem)
            prev, count = record["hash"], seq
    except _BadLine as exc:
        return ArchiveCheck(False, count, None, exc.line, str(exc))
    last = number + 1
    if end is None:
        return ArchiveCheck(False, count, None, last, "the end line is missing: the archive was cut short")
    if end.get("events") != count or count != checkpoint.seq:
        return ArchiveCheck(
            False, count, None, last, f"{count} events, but the checkpoint vouches for {checkpoint.seq}"
        )
    if prev != checkpoint.head_hash:
        return ArchiveCheck(False, count, None, last, "the last event's hash is not the checkpoint's head hash")
    return ArchiveCheck(True, count, checkpoint.seq, checkpoint=checkpoint)


def _link_problem(record: dict[str, Any], seq: int, prev: str) -> str | None:
    if record.get("record") == "event" and set(record) != _EVENT_KEYS:
        return f"the line of event {record.get('seq')} has other fields than an event's"
    if record.get("record") != "event" or record.get("seq") != seq:
        return (
            f"expected event {seq}, found {record.get('record')} {record.get('seq')}: an event is missing or moved"
        )
    if record.get("prev_hash") != prev:
        return f"event {seq} does not follow event {seq - 1} (previous hash differs)"
    body = record.get("body")
    if not isinstance(body, str) or chain_hash(prev, seq, body.encode("utf-8")) != record.get("hash"):
        return f"event {seq} was altered (its hash does not match its body)"
    return None


class _BadLine(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose every key appears once (a repeated key could show a reader one value, the check
    another)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError("a key appears twice")
    return found


def _records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    number = 0
    try:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                raise _BadLine(number, "an empty line: an archive has none")
            try:
                record = json.loads(line, object_pairs_hook=unique_keys)
            except ValueError as exc:
                raise _BadLine(number, f"not an archive's JSON ({exc})") from None
            if not isinstance(record, dict):
                raise _BadLine(number, "not a JSON object")
            yield number, record
    except UnicodeDecodeError:
        raise _BadLine(number + 1, "not UTF-8 text: the file was damaged or is not an archive") from None
