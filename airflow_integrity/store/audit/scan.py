"""The streaming check behind :func:`~airflow_integrity.store.audit.verify.verify`: numbers, links, hashes.

Every hash is re-computed here with SHA-256 over the bytes it covers (``prev_hash "\\n" seq "\\n" body``), so
the outcome never depends on a hash computed by the database. Two passes share the work:

fast pass
    reads the rows, in sequence order, in the cheapest form the backend offers and accepts a stretch of the
    chain only if every event in it has the next sequence number, links to the hash before it and hashes to
    its stored hash. PostgreSQL sends one row per :data:`FAST_BATCH` events (arrays of sequence numbers,
    hashes, previous hashes and the message bytes, assembled by the database from the stored row), so the
    work per event is one SHA-256 and list comparisons done in C; SQLite hands over each row and the message
    is assembled here.
exact pass
    from the first stretch the fast pass did not accept (if any) to the end: row by row, each message as the
    database assembles it, stopping at the first anomaly for :mod:`~airflow_integrity.store.audit.verify`
    to name.

The fast pass accepts nothing the exact pass would refuse, so the outcome is always the exact pass's.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Generator, Iterable
from operator import methodcaller
from typing import Any

from sqlalchemy.engine import Connection

from airflow_integrity.store.audit.schema import EVENT, message_sql

# Events per row of the PostgreSQL fast pass (about half a megabyte of messages).
FAST_BATCH = 1000
# SQLite reads the file through a memory map: no copy of each page through read().
_SQLITE_MMAP_BYTES = 1 << 30
_hexdigest = methodcaller("hexdigest")


class Scan:
    """Sequence continuity, links and hashes from ``seq`` on, remembering the hashes at checkpoints.

    Args:
        seq: The first sequence number to verify.
        head: The hash the event ``seq`` must link to.
        marks: Sequence numbers of checkpoints, whose hashes are kept in :attr:`at_marks`.
    """

    def __init__(self, seq: int, head: str, marks: set[int]) -> None:
        self.seq = seq  # the next sequence number expected
        self.head = head  # hash of the last event verified
        self.before_head: str | None = None  # hash of the event before that
        self.marks = marks
        self.at_marks: dict[int, str] = {seq - 1: head}

    def run(self, conn: Connection, backend: str, batch_size: int) -> tuple[int, str, Any] | None:
        """Verify every event from :attr:`seq` on; return the first anomalous row (``seq, hash, message``)."""
        driver: Any = conn.connection.driver_connection
        if backend == "postgresql":
            # A batch the fast pass accepted holds each of its sequence numbers once: the events before the
            # first one it did not accept are exactly those it accepted, and the exact pass goes on from there.
            if self._fast_postgres(driver):
                return None
        else:
            # The fast pass reads the rows as stored, in insertion order: what it accepted before an anomaly
            # need not be the events before it in sequence order, so the exact pass starts over.
            start = (self.seq, self.head, self.before_head, dict(self.at_marks))
            driver.execute(f"PRAGMA mmap_size={_SQLITE_MMAP_BYTES}")
            if self._fast_sqlite(driver):
                return None
            self.seq, self.head, self.before_head, self.at_marks = start
        batches = _exact_rows(driver, backend, self.seq, batch_size)
        try:
            return self._exact(batches)
        finally:
            batches.close()

    def _fast_postgres(self, driver: Any) -> bool:
        """The fast pass on PostgreSQL; ``False`` at the first batch it does not accept (state before it)."""
        message = message_sql("postgresql")
        # One row per batch of FAST_BATCH sequence numbers, an index range scan each. The rows come in the
        # order of generate_series; were they not, the numbers would not match and the exact pass would decide.
        query = f"""
            SELECT b.seqs, b.hashes, b.prevs, b.messages
            FROM generate_series({int(self.seq)}, (SELECT max(m.seq) FROM {EVENT} AS m), {FAST_BATCH}) AS g(lo)
            CROSS JOIN LATERAL (
                SELECT array_agg(e.seq ORDER BY e.seq) AS seqs, array_agg(e.hash ORDER BY e.seq) AS hashes,
                       array_agg(e.prev_hash ORDER BY e.seq) AS prevs,
                       array_agg({message} ORDER BY e.seq) AS messages
                FROM {EVENT} AS e WHERE e.seq >= g.lo AND e.seq < g.lo + {FAST_BATCH}
            ) AS b"""
        sha = hashlib.sha256
        seq, head, before = self.seq, self.head, self.before_head
        marks = sorted(m for m in self.marks if m >= seq)
        driver.execute("SAVEPOINT integrity_audit_fast_scan")
        stream = driver.cursor(binary=True).stream(query, size=1)
        try:
            for seqs, hashes, prevs, messages in stream:
                if not seqs:  # no event in a whole batch: a gap
                    return False
                count = len(seqs)
                try:
                    if (
                        seqs != list(range(seq, seq + count))
                        or prevs[0] != head
                        or prevs[1:] != hashes[:-1]
                        or list(map(_hexdigest, map(sha, messages))) != hashes
                    ):
                        return False
                except TypeError:  # a NULL body
                    return False
                index = bisect_left(marks, seq)
                while index < len(marks) and marks[index] < seq + count:
                    self.at_marks[marks[index]] = hashes[marks[index] - seq]
                    index += 1
                before = hashes[-2] if count > 1 else head
                head = hashes[-1]
                seq += count
            return True
        finally:
            self.seq, self.head, self.before_head = seq, head, before
            stream.close()
            driver.execute("ROLLBACK TO SAVEPOINT integrity_audit_fast_scan")

    def _fast_sqlite(self, driver: Any) -> bool:
        """The fast pass on SQLite; ``False`` at the first row it does not accept.

        Events are appended in sequence order, so the table (rowid) order is the sequence order of an intact
        chain, and reading it skips a look-up through the sequence index per event. A pass that accepts every
        row has seen each sequence number from the start once, in order, exactly as the exact pass would.
        """
        query = (
            f"SELECT e.seq, e.hash, e.prev_hash, CAST(e.body AS BLOB) FROM {EVENT} AS e NOT INDEXED "
            f"WHERE e.seq >= {int(self.seq)}"
        )
        sha = hashlib.sha256
        seq, head, before, marks, at_marks = self.seq, self.head, self.before_head, self.marks, self.at_marks
        cursor = driver.execute(query)
        try:
            for number, digest, prev, body in cursor:
                try:
                    if (
                        number != seq
                        or prev != head
                        or sha(b"%b\n%d\n%b" % (prev.encode(), number, body)).hexdigest() != digest
                    ):
                        return False
                except TypeError:  # a NULL body
                    return False
                before, head = head, digest
                seq += 1
                if number in marks:
                    at_marks[number] = digest
            return True
        finally:
            self.seq, self.head, self.before_head = seq, head, before
            cursor.close()

    def _exact(self, batches: Iterable[Iterable[Any]]) -> tuple[int, str, Any] | None:
        """The exact pass: each row's message as the database assembles it; stop at the first anomaly."""
        sha = hashlib.sha256
        seq, head, before, marks, at_marks = self.seq, self.head, self.before_head, self.marks, self.at_marks
        head_bytes = head.encode("ascii")
        try:
            for rows in batches:
                for row in rows:
                    number, digest, message = row
                    try:
                        if number != seq or message[:64] != head_bytes or sha(message).hexdigest() != digest:
                            return row
                    except TypeError:  # a NULL body or hash
                        return row
                    before, head = head, digest
                    head_bytes = digest.encode("ascii")
                    seq += 1
                    if number in marks:
                        at_marks[number] = digest
        finally:
            self.seq, self.head, self.before_head = seq, head, before
        return None


def _exact_rows(driver: Any, backend: str, start: int, batch_size: int) -> Generator[Iterable[Any], None, None]:
    """Batches of ``(seq, hash, message bytes)`` rows in sequence order, from ``start``.

    PostgreSQL streams the result (the server keeps producing rows while Python checks them) inside a
    savepoint, so that stopping early, which cancels the query, leaves the transaction usable.
    """
    message = message_sql(backend)
    query = f"SELECT e.seq, e.hash, {message} FROM {EVENT} AS e WHERE e.seq >= {int(start)} ORDER BY e.seq"
    if backend == "postgresql":
        driver.execute("SAVEPOINT integrity_audit_scan")
        stream = driver.cursor(binary=True).stream(query, size=batch_size)
        try:
            yield stream
        finally:
            stream.close()
            driver.execute("ROLLBACK TO SAVEPOINT integrity_audit_scan")
        return
    cursor = driver.cursor()
    try:
        cursor.execute(query)
        while rows := cursor.fetchmany(batch_size):
            yield rows
    finally:
        cursor.close()
