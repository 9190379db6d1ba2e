"""A durable local spool for audit events that could not reach the store.

Used only under the ``spool`` policy: an event that cannot be appended is written, fsynced, as one JSON
line; when the store is reachable again the spool is replayed in its original order. Events keep their
``event_id``, so a replay interrupted half-way is simply replayed again: the audit log recognises events
it already holds. An exclusive file lock serialises writers and the drain across processes.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import IO

from airflow_integrity.store.audit import AuditEvent


class AuditSpool:
    """An append-only file of audit events waiting for the store.

    Args:
        directory: Where the spool file lives; created if missing.
    """

    FILE_NAME = "audit-spool.jsonl"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.FILE_NAME

    @contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def put(self, event: AuditEvent) -> None:
        """Append ``event`` durably (written and fsynced before returning)."""
        line = json.dumps({**asdict(event), "details": dict(event.details)}, sort_keys=True) + "\n"
        with self._locked() as handle:
            handle.seek(0, os.SEEK_END)
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def pending(self) -> int:
        """How many events wait in the spool (0 when there is no spool file)."""
        try:
            if self.path.stat().st_size == 0:
                return 0
        except FileNotFoundError:
            return 0
        with self._locked() as handle:
            handle.seek(0)
            return sum(1 for line in handle if line.strip())

    def drain(self, append: Callable[[AuditEvent], object]) -> int:
        """Replay every spooled event through ``append`` in order, then empty the spool.

        If ``append`` raises, the spool is left whole and the error propagates; a later drain replays it
        again from the start, which is safe because events keep their ids.
        """
        try:
            if self.path.stat().st_size == 0:
                return 0
        except FileNotFoundError:
            return 0
        with self._locked() as handle:
            handle.seek(0)
            events = [AuditEvent(**json.loads(line)) for line in handle if line.strip()]
            for event in events:
                append(event)
            handle.truncate(0)
            handle.flush()
            os.fsync(handle.fileno())
        return len(events)
