"""A durable local spool for audit events that could not reach the store.

Used under the ``spool`` policy, and as the last resort for an event of a step that already happened (a task's
end) under any policy: an event the store cannot take is validated (an event the store would refuse is never
spooled: its error is raised at once), then written, fsynced, as one JSON line with when and where it was
first attempted. When the store is reachable again the spool is replayed in its original order.

Every event keeps the ``event_id`` it was given before its first attempt, so a replay is idempotent: an
event the store already holds (a replay interrupted half-way, or a first attempt whose answer was lost) is
recognised and counted as already recorded, never recorded twice. A replayed event carries, in its details
under ``_spool``, the time it was first attempted (``occurred_at``, the writer's clock), when it was spooled,
the host and process, and why; its ``recorded_at`` is the store's time of the replay. A line the store refuses
(or that cannot be read) is set aside, with the reason, into ``audit-spool.refused.jsonl`` beside the spool:
kept and reported, it no longer blocks the events after it.

A lock file serialises writers and the replay across the processes of a host; the replay writes what is left
to a new file and renames it over the spool, so a crash at any point loses no line.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_integrity.store.audit.event import (
    AuditEvent,
    AuditEventConflictError,
    AuditEventError,
    format_timestamp,
)
from airflow_integrity.store.errors import StoreError

SPOOL_KEY = "_spool"


@dataclass
class DrainReport:
    """What a replay of the spool did.

    Args:
        replayed: Events recorded in the store by this replay.
        already_recorded: Events the store already held (an earlier, interrupted replay or first attempt).
        set_aside: Lines the store refused or that could not be read, moved to :attr:`set_aside_path`.
        remaining: Events left in the spool because the store became unreachable during the replay.
        set_aside_path: Where refused lines are kept.
        errors: Why each line was set aside (and why the replay stopped, if it did).
    """

    replayed: int = 0
    already_recorded: int = 0
    set_aside: int = 0
    remaining: int = 0
    set_aside_path: Path | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def moved(self) -> int:
        """Lines that left the spool (recorded, found recorded, or set aside)."""
        return self.replayed + self.already_recorded + self.set_aside

    def summary(self) -> str:
        """One line for people."""
        text = (
            f"{self.replayed} replayed, {self.already_recorded} already recorded, {self.set_aside} set aside, "
            f"{self.remaining} left in the spool"
        )
        if self.set_aside:
            text += f" (set aside in {self.set_aside_path})"
        return text


class AuditSpool:
    """An append-only file of audit events waiting for the store.

    Args:
        directory: Where the spool file lives; created if missing.
    """

    FILE_NAME = "audit-spool.jsonl"
    REFUSED_NAME = "audit-spool.refused.jsonl"
    LOCK_NAME = "audit-spool.lock"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.FILE_NAME
        self.refused_path = self.directory / self.REFUSED_NAME

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / self.LOCK_NAME, "a", encoding="utf-8") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def put(self, event: AuditEvent, *, occurred_at: datetime, reason: str) -> AuditEvent:
        """Append ``event`` durably (written and fsynced before returning); return it as it will be replayed.

        Args:
            event: The event, with its ``event_id`` (see :meth:`AuditEvent.identified`).
            occurred_at: When it was first attempted (the writer's clock).
            reason: Why the store could not take it.

        Raises:
            AuditEventError: The event is invalid (the store would refuse it too); it is not spooled.
        """
        if event.event_id is None:
            raise AuditEventError("A spooled audit event needs its event_id; use event.identified().")
        marker = {
            "occurred_at": format_timestamp(occurred_at),
            "spooled_at": format_timestamp(datetime.now(UTC)),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "reason": reason[:500],
        }
        spooled = replace(event, details={**dict(event.details), SPOOL_KEY: marker})
        spooled.prepare()  # refuse now what the store would refuse at every replay
        line = json.dumps({"event": _fields(event), "spool": marker}, sort_keys=True) + "\n"
        with self._locked(), open(self.path, "ab") as handle:
            if handle.tell() and not self._ends_with_newline():
                handle.write(b"\n")  # a line torn by a crash stays a line of its own
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        return spooled

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def pending(self) -> int:
        """How many events wait in the spool (0 when there is no spool file)."""
        if not self.has_lines():
            return 0
        with self._locked():
            return len(self._lines())

    def has_lines(self) -> bool:
        """Whether the spool file holds anything (one ``stat``, no lock: cheap enough for every event)."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def drain(self, record: Callable[[AuditEvent], object]) -> DrainReport:
        """Replay the spooled events through ``record`` in their order.

        An event whose ``event_id`` the store already holds with other content is tried once more as it was
        first attempted, without the spool marker: if that matches, the first attempt had reached the store.
        A line the store refuses is set aside; when the store cannot be reached the replay stops and keeps the
        rest for the next one.
        """
        report = DrainReport(set_aside_path=self.refused_path)
        if not self.has_lines():
            return report
        with self._locked():
            lines = self._lines()
            left: list[bytes] = []
            for index, line in enumerate(lines):
                try:
                    original, spooled = _decode(line)
                except (ValueError, TypeError, KeyError, RecursionError) as exc:
                    self._set_aside(line, f"not a spooled audit event: {type(exc).__name__}: {exc}"[:500], report)
                    continue
                try:
                    self._replay(record, original, spooled, report)
                except AuditEventError as exc:
                    self._set_aside(line, str(exc), report)
                except StoreError as exc:
                    left = lines[index:]
                    report.errors.append(f"stopped: the store could not take event {original.event_id}: {exc}")
                    break
            report.remaining = len(left)
            if report.moved:
                self._rewrite(left)
        return report

    @staticmethod
    def _replay(
        record: Callable[[AuditEvent], object], original: AuditEvent, spooled: AuditEvent, report: DrainReport
    ) -> None:
        try:
            record(spooled)
        except AuditEventConflictError:
            record(original)  # recorded as first attempted, or a genuine conflict (set aside by the caller)
            report.already_recorded += 1
            return
        report.replayed += 1

    def _lines(self) -> list[bytes]:
        """The spool's lines as bytes: one that is not even UTF-8 (torn inside a character) is set aside
        like any other unreadable line, never allowed to stop the replay."""
        try:
            with open(self.path, "rb") as handle:
                return [line if line.endswith(b"\n") else line + b"\n" for line in handle if line.strip()]
        except FileNotFoundError:
            return []

    def _set_aside(self, line: bytes, reason: str, report: DrainReport) -> None:
        entry = {
            "line": line.rstrip(b"\n").decode("utf-8", "backslashreplace"),
            "reason": reason,
            "at": format_timestamp(datetime.now(UTC)),
        }
        with open(self.refused_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        report.set_aside += 1
        report.errors.append(reason)

    def _rewrite(self, left: list[bytes]) -> None:
        temporary = self.path.with_name(self.FILE_NAME + ".tmp")
        with open(temporary, "wb") as handle:
            handle.writelines(left)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {**asdict(event), "details": dict(event.details)}


def _decode(line: bytes) -> tuple[AuditEvent, AuditEvent]:
    """The event as first attempted, and as replayed (with the spool marker in its details)."""
    data = json.loads(line.decode("utf-8"))
    if "event" not in data:  # a line of an earlier version: the event's fields alone, perhaps without an id
        event = AuditEvent(**data)
        if event.event_id is None:
            # The same id at every replay, so that an interrupted one does not record it twice.
            seed = "airflow-integrity-spool:" + line.decode("utf-8")
            event = replace(event, event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, seed)))
        return event, event
    original = AuditEvent(**data["event"])
    spooled = replace(original, details={**dict(original.details), SPOOL_KEY: data["spool"]})
    return original, spooled
