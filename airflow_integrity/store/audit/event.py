"""Audit events and their canonical form: what is recorded, how it is serialised and hashed.

The hash chain is defined here, independently of any database, so that anyone can re-compute it
from an export:

``body``
    A JSON object of the event's content fields with keys in sorted order, no whitespace
    (separators ``,`` and ``:``), non-ASCII characters written as themselves, encoded as UTF-8.
    The fields are ``actor, bundle_version, business_key, dag_id, dag_version, details, event_id,
    event_type, map_index, recorded_at, run_id, task_id, try_number``; absent values are ``null``;
    ``details`` is itself canonical JSON (sorted keys, no whitespace) and ``recorded_at`` is the
    UTC time written ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.
``hash``
    ``SHA-256(prev_hash || "\\n" || decimal(seq) || "\\n" || body)`` in lowercase hex, where
    ``prev_hash`` is the previous event's hash (64 ASCII hex digits) and the first event's
    ``prev_hash`` is 64 zeros (:data:`GENESIS_HASH`).
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from airflow_integrity.store.errors import StoreError
from airflow_integrity.store.limits import MAX_BUSINESS_KEY_LENGTH

GENESIS_HASH = "0" * 64
MAX_DETAILS_BYTES = 64 * 1024
# Column widths; values are checked before they reach the database so errors name the field.
FIELD_LIMITS: dict[str, int] = {
    "event_type": 100,
    "actor": 250,
    "dag_id": 250,
    "dag_version": 250,
    "bundle_version": 250,
    "run_id": 250,
    "task_id": 250,
    "business_key": MAX_BUSINESS_KEY_LENGTH,
}
_canonical = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode


class AuditEventError(StoreError, ValueError):
    """An event cannot be recorded as given (bad field, details not JSON, details too large)."""


class AuditEventConflictError(AuditEventError):
    """An event's ``event_id`` is already recorded with other content."""


class AuditStoreError(StoreError):
    """The store's database refused an audit statement for a reason of its own (not the event's): a driver
    error, a constraint or trigger, a broken procedure."""


class AuditChainError(StoreError):
    """The audit chain does not verify, so an operation that relies on it was refused."""


def canonical_json(value: Any) -> str:
    """Serialise ``value`` canonically: sorted keys, no whitespace, non-ASCII kept, no NaN/Infinity.

    Args:
        value: Any JSON-compatible value (dicts with string keys, lists, strings, numbers, booleans, None).

    Raises:
        AuditEventError: ``value`` holds something JSON cannot represent; the message names its path.
    """
    try:
        return _canonical(value)
    except (TypeError, ValueError) as exc:
        path, problem = _first_unserialisable(value, "value")
        raise AuditEventError(f"{path} {problem} ({exc}).") from None


def tagged_sha256(data: Any) -> str:
    """Return ``"sha256:<hex>"`` of ``data``, for recording data in details without recording the data.

    Bytes are hashed as they are, strings as UTF-8, anything else as its :func:`canonical_json`
    (so two dicts with equal content have equal fingerprints whatever their key order).

    Args:
        data: Bytes, a string, or a JSON-compatible value.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    elif isinstance(data, str):
        raw = _utf8(data, "data")
    else:
        raw = _utf8(canonical_json(data), "data")
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def format_timestamp(moment: datetime) -> str:
    """The canonical form of a timestamp: UTC, microseconds, ``Z`` suffix."""
    if moment.tzinfo is None:
        raise AuditEventError(f"timestamp {moment!r} has no time zone; pass an aware datetime.")
    # isoformat, not strftime: it pads a year before 1000 to four digits, and takes a third less time.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_timestamp(text: str) -> datetime:
    """Read a canonical timestamp back into an aware UTC datetime."""
    if len(text) != 27 or not text.endswith("Z"):
        raise ValueError(f"{text!r} is not a canonical timestamp (YYYY-MM-DDTHH:MM:SS.ffffffZ)")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def to_timestamp(value: datetime | str | None, name: str) -> str | None:
    """Read a ``since``/``until`` bound (an aware or UTC datetime, or ISO-8601 text) as a canonical timestamp."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise AuditEventError(
                f"{name} {value!r} is not an ISO-8601 date or time, for example 2026-11-28 or "
                "2026-11-28T09:30:00Z."
            ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return format_timestamp(value)
    except OverflowError:  # an offset that takes the first or last day of the calendar out of range
        raise AuditEventError(f"{name} {value.isoformat()!r} is outside the years 1 to 9999 in UTC.") from None


def _q(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _n(value: int | None) -> str:
    return "null" if value is None else str(value)


def canonical_body(
    *,
    event_id: str,
    recorded_at: str,
    event_type: str,
    actor: str,
    dag_id: str | None,
    dag_version: str | None,
    bundle_version: str | None,
    run_id: str | None,
    task_id: str | None,
    map_index: int | None,
    try_number: int | None,
    business_key: str | None,
    details_json: str,
) -> str:
    """The canonical JSON body of an event (see the module docstring), keys in sorted order.

    Args:
        recorded_at: The canonical timestamp (:func:`format_timestamp`).
        details_json: The details as canonical JSON text (as stored).
    """
    return (
        f'{{"actor":{_q(actor)},"bundle_version":{_q(bundle_version)},"business_key":{_q(business_key)},'
        f'"dag_id":{_q(dag_id)},"dag_version":{_q(dag_version)},"details":{details_json},'
        f'"event_id":{_q(event_id)},"event_type":{_q(event_type)},"map_index":{_n(map_index)},'
        f'"recorded_at":{_q(recorded_at)},"run_id":{_q(run_id)},"task_id":{_q(task_id)},'
        f'"try_number":{_n(try_number)}}}'
    )


def chain_hash(prev_hash: str, seq: int, body: bytes) -> str:
    """``SHA-256(prev_hash "\\n" seq "\\n" body)`` in lowercase hex: the hash of event ``seq``."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(b"\n%d\n" % seq)
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True)
class AuditEvent:
    """An event to append to the audit trail.

    Args:
        event_type: What happened, for example ``task_instance.success`` or ``approval.granted``.
        actor: Who did it: the user for UI/API actions, otherwise the component and host.
        dag_id: The DAG, when the event belongs to one.
        dag_version: The DAG version, when Airflow knows it.
        bundle_version: The DAG bundle version, when Airflow knows it.
        run_id: The DAG run.
        task_id: The task.
        map_index: The mapped task index (Airflow uses -1 for unmapped tasks).
        try_number: The task try.
        business_key: An optional business key, for example ``claim-42``; indexed for export.
        details: A JSON object of further facts. Record data as :func:`fingerprint` values, not the data.
        event_id: A UUID identifying the event; generated when the event is made if omitted. Appending an
            event whose id is already recorded with the same content returns the stored record (safe retries).
    """

    event_type: str
    actor: str
    dag_id: str | None = None
    dag_version: str | None = None
    bundle_version: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    business_key: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    # Given when the event is made, so that every attempt to record it (a retry, a replay from the spool) is
    # the same event.
    event_id: str | None = field(default_factory=lambda: str(uuid.uuid4()))

    def identified(self) -> AuditEvent:
        """This event with its ``event_id`` set (a new UUID if it has none), so that every attempt to record
        it, a replay from the spool included, records it at most once."""
        return self if self.event_id is not None else replace(self, event_id=str(uuid.uuid4()))

    def prepare(self) -> PreparedEvent:
        """Validate every field and serialise the details; raise ``AuditEventError`` naming what is wrong."""
        strings: dict[str, Any] = {}
        for name, limit in FIELD_LIMITS.items():
            value = getattr(self, name)
            required = name in ("event_type", "actor")
            if value is None and not required:
                strings[name] = None
                continue
            if not isinstance(value, str) or (required and not value.strip()):
                raise AuditEventError(
                    f"Audit event field {name!r} must be a {'non-empty ' if required else ''}string"
                    f"{'' if required else ' or None'}, got {value!r}."
                )
            if len(value) > limit:
                raise AuditEventError(
                    f"Audit event field {name!r} is {len(value)} characters long; the limit is {limit}."
                )
            if "\x00" in value:
                raise AuditEventError(f"Audit event field {name!r} contains a NUL character; remove it.")
            if not value.isascii():
                _utf8(value, f"field {name!r}")
            strings[name] = value
        for name in ("map_index", "try_number"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise AuditEventError(f"Audit event field {name!r} must be an integer or None, got {value!r}.")
            if value is not None and not -(2**31) <= value < 2**31:
                raise AuditEventError(
                    f"Audit event field {name!r} is {value}; it must fit in a 32-bit integer, as Airflow's does."
                )
        return PreparedEvent(
            event_id=_event_id(self.event_id),
            details_json=details_to_json(self.details),
            map_index=self.map_index,
            try_number=self.try_number,
            **strings,
        )


@dataclass(frozen=True)
class PreparedEvent:
    """An :class:`AuditEvent` after validation: every field checked, details as canonical JSON text."""

    event_id: str
    event_type: str
    actor: str
    dag_id: str | None
    dag_version: str | None
    bundle_version: str | None
    run_id: str | None
    task_id: str | None
    map_index: int | None
    try_number: int | None
    business_key: str | None
    details_json: str

    def body(self, recorded_at: str) -> str:
        """The canonical body once the store has stamped the event with ``recorded_at``."""
        return canonical_body(
            event_id=self.event_id,
            recorded_at=recorded_at,
            event_type=self.event_type,
            actor=self.actor,
            dag_id=self.dag_id,
            dag_version=self.dag_version,
            bundle_version=self.bundle_version,
            run_id=self.run_id,
            task_id=self.task_id,
            map_index=self.map_index,
            try_number=self.try_number,
            business_key=self.business_key,
            details_json=self.details_json,
        )

    def columns(self) -> dict[str, Any]:
        """Column values for an insert (``details`` as its JSON text)."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "actor": self.actor,
            "dag_id": self.dag_id,
            "dag_version": self.dag_version,
            "bundle_version": self.bundle_version,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": self.map_index,
            "try_number": self.try_number,
            "business_key": self.business_key,
            "details": self.details_json,
        }


@dataclass(frozen=True)
class AuditRecord:
    """An event as stored in the chain, with its position and hashes."""

    seq: int
    event_id: str
    recorded_at: datetime
    event_type: str
    actor: str
    dag_id: str | None
    dag_version: str | None
    bundle_version: str | None
    run_id: str | None
    task_id: str | None
    map_index: int | None
    try_number: int | None
    business_key: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def body(self) -> str:
        """The canonical body this record's hash covers."""
        return canonical_body(
            event_id=self.event_id,
            recorded_at=format_timestamp(self.recorded_at),
            event_type=self.event_type,
            actor=self.actor,
            dag_id=self.dag_id,
            dag_version=self.dag_version,
            bundle_version=self.bundle_version,
            run_id=self.run_id,
            task_id=self.task_id,
            map_index=self.map_index,
            try_number=self.try_number,
            business_key=self.business_key,
            details_json=canonical_json(self.details),
        )

    def computed_hash(self) -> str:
        """Re-compute the hash from the fields; equals :attr:`hash` for an intact record."""
        return chain_hash(self.prev_hash, self.seq, self.body().encode("utf-8"))

    def receipt(self) -> Recorded:
        """The receipt of this (chained) record, as :meth:`AuditLog.record` returns receipts."""
        return Recorded(self.event_id, self.recorded_at, self.seq, self.prev_hash, self.hash)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view, timestamps in canonical form."""
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "recorded_at": format_timestamp(self.recorded_at),
            "event_type": self.event_type,
            "actor": self.actor,
            "dag_id": self.dag_id,
            "dag_version": self.dag_version,
            "bundle_version": self.bundle_version,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": self.map_index,
            "try_number": self.try_number,
            "business_key": self.business_key,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Recorded:
    """The receipt of an event durably recorded by :meth:`~airflow_integrity.store.audit.chain.AuditLog.record`
    (and ``IntegrityCheckHook.record_event``).

    ``seq``, ``prev_hash`` and ``hash`` are ``None`` when the event was not chained yet as the call returned
    (it is, within about a second); read its place later by ``event_id``.
    """

    event_id: str
    recorded_at: datetime
    seq: int | None
    prev_hash: str | None
    hash: str | None

    @property
    def chained(self) -> bool:
        """Whether the event already has its place in the chain."""
        return self.seq is not None


def details_to_json(details: Mapping[str, Any] | None) -> str:
    """Validate ``details`` and return its canonical JSON text.

    Raises:
        AuditEventError: ``details`` is not a mapping with string keys, holds a value JSON cannot represent,
            or serialises to more than :data:`MAX_DETAILS_BYTES`; the message names the offending key.
    """
    if details is None:
        details = {}
    if not isinstance(details, Mapping):
        raise AuditEventError(f"Audit event details must be a dict (a JSON object), got {type(details).__name__}.")
    try:
        text = _canonical(dict(details))
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError) as exc:
        path, problem = _first_unserialisable(dict(details), "details")
        raise AuditEventError(
            f"Audit event {path} {problem} ({exc}). Details must be JSON; record data as "
            "airflow_integrity.audit.fingerprint(value) instead of the value."
        ) from None
    if "\\u0000" in text and (nul_path := _find_nul(dict(details), "details")):
        raise AuditEventError(
            f"Audit event {nul_path} contains a NUL character, which PostgreSQL cannot store in JSON; remove it "
            "or record fingerprint(value) instead."
        )
    if size > MAX_DETAILS_BYTES:
        sizes = sorted(
            ((len(_canonical(v).encode("utf-8", "replace")), k) for k, v in details.items()), reverse=True
        )
        largest = ", ".join(f"{key!r} ({n} bytes)" for n, key in sizes[:3])
        raise AuditEventError(
            f"Audit event details are {size} bytes of JSON; the limit is {MAX_DETAILS_BYTES}. Largest keys: "
            f"{largest}. Record large data as fingerprint(value) instead of the value."
        )
    return text


def _first_unserialisable(value: Any, path: str, seen: frozenset[int] = frozenset()) -> tuple[str, str]:
    """Find the first part of ``value`` JSON cannot represent; return its path and what is wrong."""
    if isinstance(value, Mapping | list | tuple):
        if id(value) in seen:
            return path, "contains itself (a circular reference)"
        seen = seen | {id(value)}
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return path, f"has a key {key!r} of type {type(key).__name__}; JSON object keys must be strings"
            found = _first_unserialisable(item, f"{path}[{key!r}]", seen)
            if found[1]:
                return found
        return path, ""
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _first_unserialisable(item, f"{path}[{index}]", seen)
            if found[1]:
                return found
        return path, ""
    if isinstance(value, float) and not math.isfinite(value):
        return path, f"is {value!r}, which JSON cannot represent"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path, "is a string that is not valid Unicode (it holds a lone surrogate)"
        return path, ""
    if value is None or isinstance(value, bool | int | float):
        return path, ""
    return path, f"is a {type(value).__name__}, which is not JSON"


def _find_nul(value: Any, path: str) -> str | None:
    """The path of the first string (or key) holding a NUL character, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = path if "\x00" in str(key) else _find_nul(item, f"{path}[{key!r}]")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if found := _find_nul(item, f"{path}[{index}]"):
                return found
    return None


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AuditEventError(f"Audit event {what} is not valid Unicode ({exc.reason} at {exc.start}).") from None


def _event_id(value: str | None) -> str:
    if value is None:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise AuditEventError(f"Audit event_id {value!r} is not a UUID; omit it to have one generated.") from None
