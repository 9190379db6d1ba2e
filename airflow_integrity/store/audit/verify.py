"""Verification of the audit chain: every hash, every link, every signed checkpoint.

The scan (:mod:`airflow_integrity.store.audit.scan`) streams the events in sequence order and
re-computes each SHA-256 in Python over the exact bytes it covers (``prev_hash "\\n" seq "\\n" body``),
so the result never depends on a hash computed by the database. When it meets the first anomaly a few
targeted queries name it:

``gap``
    a sequence number is missing (an event was deleted), or an event links to one that is not in
    the log (deleted, later events renumbered);
``forged insert``
    an event was inserted between two others (the next one still links to the one before), or a
    second event carries an existing sequence number;
``reorder``
    the event at a position belongs elsewhere in the chain (events swapped);
``hash mismatch``
    an event's content no longer matches its hash (edited), or it was edited and re-hashed while
    the next event still links to the original;
``field mismatch``
    the searchable copy of an event (PostgreSQL ``doc``) no longer agrees with its hashed body (it was
    altered after its generation from the body was removed);
``checkpoint mismatch``
    a signed checkpoint does not verify (bad signature, unknown key) or the chain's hash at its
    sequence number differs from the signed one (the chain was rewritten consistently);
``truncated``
    the log ends before the sequence number of a signed checkpoint;
``altered before chaining``
    (PostgreSQL) an event recorded and not chained yet was changed in place after it was recorded: its
    intake row no longer matches the seal set when it was recorded (migration a3; for rows recorded before,
    its row version was written by another transaction than the one that recorded it), or its details are not
    JSON. Chaining leaves such a row out. It is named by the sequence number it would take, the one after the
    head;
``lost before chaining``
    (PostgreSQL) an event was recorded and is neither chained nor within reach of the next chaining: an event
    inserted into the chain directly moved the chaining horizon past it. (An event that names no recorded
    intake row is reported as a ``forged insert`` at its sequence number.)

Events recorded and not chained yet (PostgreSQL, usually for less than a second) are counted in
``pending`` and not covered by the chain's verification. After the store moved to another PostgreSQL
cluster (a dump restored there), which rewrote every row, those recorded before the move cannot be checked
for ``altered before chaining`` until they are chained: a warning says so.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from airflow_integrity.store.audit.event import GENESIS_HASH
from airflow_integrity.store.audit.scan import Scan
from airflow_integrity.store.audit.schema import AUDIT_TABLES, EVENT, INTAKE
from airflow_integrity.store.audit.signing import Checkpoint, CheckpointKey, list_checkpoints, store_id

if TYPE_CHECKING:
    from airflow_integrity.store.store import IntegrityStore

HASH_MISMATCH = "hash mismatch"
GAP = "gap"
REORDER = "reorder"
FORGED_INSERT = "forged insert"
FIELD_MISMATCH = "field mismatch"
CHECKPOINT_MISMATCH = "checkpoint mismatch"
TRUNCATED = "truncated"
ALTERED_BEFORE_CHAINING = "altered before chaining"
LOST_BEFORE_CHAINING = "lost before chaining"


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify`.

    Args:
        ok: Whether the chain (from ``verified_from``) and every checkpoint verified.
        count: Events verified before the first bad one (all of them when ``ok``).
        head_seq: Sequence number of the last event verified (0 for an empty log).
        head_hash: Hash of that event (the genesis hash for an empty log).
        first_bad_seq: The first sequence number that cannot be trusted, when not ``ok``.
        reason: One of the reasons in this module's docstring, when not ``ok``.
        detail: What exactly was found, in words.
        verified_from: The first sequence number verified (after a trusted checkpoint, or 1).
        checkpoints: Checkpoints whose head hash matched the chain.
        signatures_checked: Whether checkpoint signatures were checked (a key was given).
        pending: Events recorded but not chained yet, so not covered by this verification (PostgreSQL).
        warnings: Findings that do not break the chain, such as a disabled append-only trigger.
    """

    ok: bool
    count: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None
    detail: str | None = None
    verified_from: int = 1
    checkpoints: int = 0
    signatures_checked: bool = False
    pending: int = 0
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for people: the count and head hash, or the first bad sequence number and why."""
        if not self.ok:
            return f"first bad seq {self.first_bad_seq}: {self.reason}: {self.detail}"
        signed = "signatures verified" if self.signatures_checked else "signatures not checked (no key given)"
        since = f" (from seq {self.verified_from})" if self.verified_from > 1 else ""
        pending = f"; {self.pending} recorded event(s) not chained yet" if self.pending else ""
        return (
            f"{self.count} events verified{since}, head seq {self.head_seq}, head hash {self.head_hash}; "
            f"{self.checkpoints} checkpoint(s) matched, {signed}{pending}"
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view."""
        return {**asdict(self), "warnings": list(self.warnings)}


@dataclass
class _Problem:
    seq: int
    reason: str
    detail: str


def verify(
    store: IntegrityStore,
    *,
    key: CheckpointKey | Sequence[CheckpointKey] | None = None,
    from_checkpoint: bool = False,
    batch_size: int = 5_000,
    skip_unverifiable_checkpoints: bool = False,
) -> VerifyResult:
    """Verify the audit chain and its signed checkpoints.

    Args:
        store: The integrity store.
        key: The checkpoint key(s) (every key that signed a checkpoint, after rotations). Without a key,
            checkpoints are compared with the chain but their signatures are not checked.
        from_checkpoint: Start after the latest checkpoint whose signature verifies with ``key`` (and whose
            head hash is the stored hash at its sequence number) instead of at the first event.
        batch_size: Rows fetched per round trip.
        skip_unverifiable_checkpoints: Pass over a checkpoint row whose signature ``key`` does not verify (a
            forged row, or one of another key), with a warning, instead of failing on it: for signing a new
            checkpoint, which must not be blocked by a row anyone could insert. Verification proper fails on it.
    """
    keys = {k.key_id: k for k in ([key] if isinstance(key, CheckpointKey) else list(key or ()))}
    with store.read() as conn:
        if store.backend == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        identity = store_id(conn)
        checkpoints = list_checkpoints(conn)
        warnings = _schema_warnings(conn, store.backend)
        start_seq, start_hash = 1, GENESIS_HASH
        if from_checkpoint and keys:
            trusted = _trusted_start(conn, checkpoints, keys, identity)
            if trusted is not None:
                start_seq, start_hash = trusted.seq + 1, trusted.head_hash
        scan = Scan(start_seq, start_hash, {cp.seq for cp in checkpoints})
        anomaly = scan.run(conn, store.backend, batch_size)
        problem = _diagnose(conn, scan, anomaly, start_seq) if anomaly is not None else None
        if problem is None and _generated_altered(conn, store.backend):
            problem = _first_field_mismatch(conn, start_seq)
        pending, altered, unchecked = _pending(conn) if store.backend == "postgresql" else (0, None, None)
        if store.backend == "postgresql":
            problem = _first(problem, _outside_the_chaining(conn, scan.seq, pending))
    matched, cp_problem = _check_checkpoints(
        checkpoints,
        keys,
        identity,
        scan,
        start_seq,
        chain_intact=problem is None,
        skipped=warnings if skip_unverifiable_checkpoints else None,
    )
    if cp_problem is not None and (problem is None or cp_problem.seq <= problem.seq):
        problem = cp_problem
    if not keys and checkpoints:
        warnings.append("checkpoint signatures were not checked: no key was given")
    if problem is None and altered is not None:
        problem = _Problem(scan.seq, ALTERED_BEFORE_CHAINING, altered)
    if unchecked is not None:
        warnings.append(unchecked)
    if pending:
        warnings.append(
            f"{pending} recorded event(s) are not chained yet, so this verification does not cover them; the "
            "process that recorded them chains them within about a second, or, if it ended first, the next "
            "chaining does (a later event, the end of a DAG run, `airflow integrity audit export` or `audit "
            "checkpoint`)"
        )
    count = scan.seq - start_seq
    if problem is not None:
        count = max(0, min(count, problem.seq - start_seq))
    return VerifyResult(
        ok=problem is None,
        count=count,
        head_seq=scan.seq - 1,
        head_hash=scan.head,
        first_bad_seq=problem.seq if problem else None,
        reason=problem.reason if problem else None,
        detail=problem.detail if problem else None,
        verified_from=start_seq,
        checkpoints=matched,
        signatures_checked=bool(keys),
        pending=pending,
        warnings=tuple(warnings),
    )


def _exists(conn: Connection, where: str, params: dict[str, Any]) -> int | None:
    return conn.execute(text(f"SELECT e.seq FROM {EVENT} AS e WHERE {where} LIMIT 1"), params).scalar()


def _diagnose(conn: Connection, scan: Scan, row: tuple[int, str, Any], start: int) -> _Problem:
    """Name the first anomaly: the row the scan stopped at, against what it expected."""
    number, digest, message = row
    expected, head, before = scan.seq, scan.head, scan.before_head
    if number > expected:
        missing = f"{expected}" if number == expected + 1 else f"{expected} to {number - 1}"
        return _Problem(
            expected, GAP, f"event(s) {missing} are missing: the log goes from {expected - 1} to {number}"
        )
    if number < expected:
        return _Problem(number, FORGED_INSERT, f"a second event is numbered {number}")
    if message is None or digest is None:
        return _Problem(expected, HASH_MISMATCH, f"event {expected} has no body or no hash")
    prev = bytes(message[:64]).decode("ascii", "replace")
    self_consistent = hashlib.sha256(message).hexdigest() == digest
    if prev != head:
        if before is not None and prev == before and expected > start:
            return _Problem(
                expected - 1,
                FORGED_INSERT,
                f"event {expected - 1} was inserted: event {expected} links to event {expected - 2}",
            )
        if self_consistent and expected > start:
            return _Problem(
                expected - 1,
                HASH_MISMATCH,
                f"event {expected - 1} was changed and re-hashed: event {expected} links to its original",
            )
        elsewhere = _exists(conn, "e.prev_hash = :head AND e.seq <> :seq", {"head": head, "seq": number})
        origin = _exists(conn, "e.hash = :prev AND e.seq <> :seq", {"prev": prev, "seq": number})
        if elsewhere is not None or origin is not None:
            where = (
                f"event {elsewhere} follows event {expected - 1}" if elsewhere else f"it follows event {origin}"
            )
            return _Problem(expected, REORDER, f"the event at {expected} belongs elsewhere in the chain ({where})")
        return _Problem(
            expected,
            GAP,
            f"event {expected} links to an event that is not in the log (deleted, later events renumbered, "
            "or its prev_hash edited)",
        )
    return _Problem(expected, HASH_MISMATCH, f"the recorded content of event {expected} does not match its hash")


def _trusted_start(
    conn: Connection, checkpoints: list[Checkpoint], keys: dict[str, CheckpointKey], identity: str
) -> Checkpoint | None:
    """The latest checkpoint that verifies with ``keys`` and matches the stored hash at its sequence number."""
    for cp in sorted(checkpoints, key=lambda c: (c.seq, c.id), reverse=True):
        key = keys.get(cp.key_id)
        if key is None or not cp.signed_by(key, identity):
            continue
        stored = conn.execute(text(f"SELECT hash FROM {EVENT} WHERE seq = :seq"), {"seq": cp.seq}).scalar()
        if stored == cp.head_hash:
            return cp
    return None


def _check_checkpoints(
    checkpoints: list[Checkpoint],
    keys: dict[str, CheckpointKey],
    identity: str,
    scan: Scan,
    start: int,
    *,
    chain_intact: bool,
    skipped: list[str] | None = None,
) -> tuple[int, _Problem | None]:
    """Check every checkpoint in the scanned range; return how many matched and the first problem.

    With ``skipped``, a checkpoint whose signature the keys do not verify is passed over and named there.
    """
    matched = 0
    good = start - 1
    for cp in sorted(checkpoints, key=lambda c: (c.seq, c.id)):
        if cp.seq < start - 1:
            continue
        if keys and skipped is not None:
            key = keys.get(cp.key_id)
            if key is None or not cp.signed_by(key, identity):
                skipped.append(
                    f"checkpoint {cp.id} at seq {cp.seq} (key {cp.key_id}) does not verify with the given key: "
                    "passed over; `airflow integrity audit verify` reports it"
                )
                continue
        if keys:
            key = keys.get(cp.key_id)
            if key is None:
                return matched, _Problem(
                    good + 1,
                    CHECKPOINT_MISMATCH,
                    f"the checkpoint at seq {cp.seq} is signed with key {cp.key_id}, which was not given",
                )
            if not cp.signed_by(key, identity):
                return matched, _Problem(
                    good + 1,
                    CHECKPOINT_MISMATCH,
                    f"the signature of the checkpoint at seq {cp.seq} does not verify with key {cp.key_id}: "
                    "events after the last good checkpoint may have been rewritten",
                )
        if cp.seq >= scan.seq:
            if chain_intact:
                return matched, _Problem(
                    scan.seq,
                    TRUNCATED,
                    f"the log ends at seq {scan.seq - 1}, before the signed checkpoint at seq {cp.seq}",
                )
            continue
        if scan.at_marks.get(cp.seq) != cp.head_hash:
            return matched, _Problem(
                good + 1,
                CHECKPOINT_MISMATCH,
                f"the chain's hash at seq {cp.seq} differs from the one signed by checkpoint {cp.id}: "
                f"events {good + 1} to {cp.seq} were rewritten",
            )
        matched += 1
        good = cp.seq
    return matched, None


def _pending(conn: Connection) -> tuple[int, str | None, str | None]:
    """Intake rows not chained yet: how many, what is wrong with the first one changed in place since it was
    recorded, if any, and a warning when that cannot be told.

    They are the rows the last chaining could not see (index lookups only), unless the store's transaction-id
    history changed since, as the chaining function of migration a2 tells it: the store was restored or
    copied from another PostgreSQL cluster, so rows recorded there have transaction ids unrelated to the
    stored horizon; then, or when the head was chained before revision a2, they are every intake row that no
    event names.

    A writer inserts its intake row in one top-level transaction (no savepoint), so the row version's ``xmin``
    is the low 32 bits of the ``txid`` the row recorded; an UPDATE writes a new version with another xmin. So
    does a restore, which writes every row anew: after one, a row recorded before it cannot be told from one
    changed in place, until the next chaining takes it into the chain.
    """
    head = conn.execute(
        text(
            "SELECT chain_xmax, chain_xip, chain_txid % 4294967296 = xmin::text::bigint, "
            f"chain_xmax > pg_snapshot_xmax(pg_current_snapshot())::text::bigint FROM {EVENT} "
            "ORDER BY seq DESC LIMIT 1"
        )
    ).first()
    xmax, xip, same_history, behind = head if head else (0, [], True, False)
    moved = same_history is False or behind is True
    exact = moved or same_history is None or xmax is None
    since_horizon = "" if exact else "(i.txid >= :xmax OR i.txid = ANY(:xip)) AND "
    # A row's seal (migration a3) tells an edit made after it was recorded, wherever the store has moved; a row
    # recorded before a3 has none, and only its row version can tell, while the store stays in its cluster.
    legacy = "false" if moved else "i.txid % 4294967296 <> i.xmin::text::bigint"
    changed = (
        "min(i.id) FILTER (WHERE CASE WHEN i.seal IS NULL THEN "
        f"{legacy} ELSE i.seal IS DISTINCT FROM integrity_audit_seal(i) END)"
    )
    count, altered = conn.execute(
        text(
            f"SELECT count(*), {changed} FROM {INTAKE} AS i WHERE {since_horizon}"
            f"NOT EXISTS (SELECT 1 FROM {EVENT} AS e WHERE e.intake_id = i.id)"
        ),
        {"xmax": xmax, "xip": list(xip or [])},
    ).one()
    warning = (
        f"the store was restored or copied from another PostgreSQL cluster since its events were last chained: "
        f"the {count} recorded event(s) not chained yet cannot be checked for changes made before that, which "
        "rewrote their rows; the next chaining takes them into the chain"
        if moved and count
        else None
    )
    problem = None
    if altered is not None:
        event_id = conn.execute(text(f"SELECT event_id FROM {INTAKE} WHERE id = :id"), {"id": altered}).scalar()
        problem = (
            f"event {event_id} (intake row {altered}), recorded and not chained yet, was changed after it was "
            "recorded: its row was rewritten by another transaction (an UPDATE with the append-only trigger "
            "switched off); chaining leaves it out"
        )
    elif count:
        problem = _unreadable_pending(conn, since_horizon, {"xmax": xmax, "xip": list(xip or [])})
    return int(count), problem, warning


def _unreadable_pending(conn: Connection, since_horizon: str, params: dict[str, Any]) -> str | None:
    """The first pending row whose details are not a JSON object (written with the store's checks off, or
    before revision a3): it can never be chained, so it is named, not counted as merely waiting."""
    rows = conn.execute(
        text(
            f"SELECT i.id, i.event_id, i.details FROM {INTAKE} AS i WHERE {since_horizon}"
            f"NOT EXISTS (SELECT 1 FROM {EVENT} AS e WHERE e.intake_id = i.id) ORDER BY i.id"
        ),
        params,
    )
    for intake_id, event_id, details in rows:
        try:
            readable = isinstance(json.loads(details), dict)
        except (TypeError, ValueError):
            readable = False
        if not readable:
            return (
                f"event {event_id} (intake row {intake_id}), recorded and not chained yet, has details that are "
                "not a JSON object: the row was written with the store's checks switched off, and chaining "
                "leaves it out"
            )
    return None


def _first(problem: _Problem | None, other: _Problem | None) -> _Problem | None:
    if other is None or (problem is not None and problem.seq <= other.seq):
        return problem
    return other


def _outside_the_chaining(conn: Connection, next_seq: int, pending: int) -> _Problem | None:
    """Events the chaining did not put there, and recorded events it can no longer reach (PostgreSQL).

    Only ``integrity_audit_chain`` adds events, each naming the intake row it chains. An event that names none
    was inserted into the chain directly; and since every chaining stores the horizon the next one starts
    from, such an insert can also move the horizon past rows recorded and not chained yet, which no chaining
    would then find. Every intake row is either chained or pending within the horizon: the counts tell, and
    an exact search names the first row that is neither.
    """
    row = conn.execute(
        text(
            f"SELECT (SELECT count(*) FROM {INTAKE}), count(e.intake_id), "
            f"min(e.seq) FILTER (WHERE e.intake_id IS NULL) FROM {EVENT} AS e"
        )
    ).one()
    recorded, chained, direct = int(row[0]), int(row[1]), row[2]
    if direct is not None:
        return _Problem(
            int(direct),
            FORGED_INSERT,
            f"event {direct} names no recorded event: it was inserted into the chain directly, not chained",
        )
    if recorded == chained + pending:
        return None
    lost = conn.execute(
        text(
            f"SELECT i.id, i.event_id FROM {INTAKE} AS i WHERE NOT EXISTS "
            f"(SELECT 1 FROM {EVENT} AS e WHERE e.intake_id = i.id) ORDER BY i.id LIMIT 1"
        )
    ).first()
    if lost is None:  # a chaining that committed during this read: nothing is lost
        return None
    return _Problem(
        next_seq,
        LOST_BEFORE_CHAINING,
        f"event {lost[1]} (intake row {lost[0]}) was recorded, but the chaining can no longer reach it: the "
        f"chain's head names a horizon past it ({recorded} recorded, {chained} chained, {pending} pending)",
    )


def _generated_altered(conn: Connection, backend: str) -> bool:
    """Whether ``doc`` (PostgreSQL) is no longer generated from the body (SQLite filters on the body itself)."""
    if backend != "postgresql":
        return False
    row = conn.execute(
        text(
            "SELECT a.attgenerated, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute AS a "
            "LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            f"WHERE a.attrelid = '{EVENT}'::regclass AND a.attname = 'doc' AND NOT a.attisdropped"
        )
    ).first()
    return row is None or row[0] != "s" or re.sub(r"[\s()]", "", row[1] or "") != "body::jsonb"


def _first_field_mismatch(conn: Connection, start: int) -> _Problem | None:
    """Compare every event's ``doc`` with its body (slow; only after ``doc`` stopped being generated)."""
    rows = conn.execute(
        text(f"SELECT e.seq, e.body, e.doc FROM {EVENT} AS e WHERE e.seq >= :s ORDER BY e.seq"), {"s": start}
    )
    for seq, body, doc in rows:
        try:
            fields = json.loads(body)
        except (TypeError, ValueError):
            return _Problem(seq, HASH_MISMATCH, f"the body of event {seq} is not JSON")
        if doc != fields:
            changed = sorted(k for k in set(fields) | set(doc or {}) if (doc or {}).get(k) != fields.get(k))
            return _Problem(
                seq,
                FIELD_MISMATCH,
                f"the searchable copy (doc) of event {seq} differs from its hashed record in {', '.join(changed)}",
            )
    return None


def _schema_warnings(conn: Connection, backend: str) -> list[str]:
    """Missing or disabled append-only triggers (the chain may still verify)."""
    warnings = []
    if backend == "postgresql":
        rows = conn.execute(
            text(
                "SELECT c.relname, count(*) FILTER (WHERE t.tgenabled <> 'D') FROM pg_class AS c "
                "LEFT JOIN pg_trigger AS t ON t.tgrelid = c.oid AND NOT t.tgisinternal "
                "WHERE c.relname = ANY(:tables) GROUP BY c.relname"
            ),
            {"tables": list(AUDIT_TABLES[backend])},
        ).all()
        enabled: dict[str, int] = {name: count for name, count in rows}
        for table in AUDIT_TABLES[backend]:
            if enabled.get(table, 0) < 2:
                warnings.append(f"append-only triggers of {table} are missing or disabled")
    else:
        names = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
        for table in AUDIT_TABLES[backend]:
            if not {f"{table}_no_update", f"{table}_no_delete"} <= names:
                warnings.append(f"append-only triggers of {table} are missing")
    return warnings


def append_only_warnings(store: IntegrityStore) -> list[str]:
    """The append-only triggers of the trail that are missing or disabled (what :func:`verify` warns of),
    without verifying the chain."""
    with store.read() as conn:
        return _schema_warnings(conn, store.backend)


def pending_events(store: IntegrityStore) -> int:
    """Events recorded and not chained yet (always 0 on SQLite, which chains each event as it is recorded)."""
    if store.backend != "postgresql":
        return 0
    with store.read() as conn:
        return _pending(conn)[0]
