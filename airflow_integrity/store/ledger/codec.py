"""Values that enter the idempotency ledger: keys, fingerprints, holders and results, checked and encoded.

Every check fails with an error that names the key and says how to fix the input.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import functools
import hashlib
import json
import math
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_integrity.store.ledger.entries import (
    InvalidKeyError,
    LedgerInputError,
    ResultNotSerializableError,
    ResultTooLargeError,
)
from airflow_integrity.store.limits import (
    MAX_BUSINESS_KEY_LENGTH,
    MAX_LEASE_SECONDS,
    MAX_TTL_SECONDS,
    duration_problem,
)

MAX_KEY_LENGTH = MAX_BUSINESS_KEY_LENGTH
MAX_NAMESPACE_LENGTH = 128
MAX_ERROR_LENGTH = 8192
MAX_PERSON_LENGTH = 256
# The canonical form fingerprints are computed in (see inputs_digest()); stored with every key claimed.
FINGERPRINT_SCHEME = 2
_HEX = frozenset("0123456789abcdef")


def show_key(key: str, limit: int = 80) -> str:
    """``key`` quoted for a message, shortened when it is long."""
    return repr(key if len(key) <= limit else key[: limit - 1] + "…")


COMPENSATION_SUFFIX = "/compensation"


def compensation_key(key: str) -> str:
    """The key under which the undoing of ``key``'s effect runs, in the same namespace: ``<key>/compensation``
    (a key too long for the suffix keeps its start and a hash of the whole, so two keys never share one)."""
    room = MAX_KEY_LENGTH - len(COMPENSATION_SUFFIX)
    if len(key) <= room:
        return key + COMPENSATION_SUFFIX
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{key[: room - len(digest) - 1]}~{digest}{COMPENSATION_SUFFIX}"


def validate_key(key: object, namespace: str) -> str:
    """Return ``key`` if it can be an idempotency key, else raise ``InvalidKeyError``.

    Args:
        key: The business key, for example ``"claim-42"``.
        namespace: The namespace it belongs to (named in the error).
    """
    if not isinstance(key, str):
        raise InvalidKeyError(
            f"Idempotency key {key!r} in namespace {namespace!r} is a {type(key).__name__}, not a string. "
            "Render the key to text, for example key='claim-{{ params.claim_id }}'."
        )
    if not key.strip():
        raise InvalidKeyError(
            f"Idempotency key {key!r} in namespace {namespace!r} is empty. Give every effect a business key "
            "that identifies it, for example 'claim-{{ params.claim_id }}'; check that the template's "
            "values are set."
        )
    if "\x00" in key:
        raise InvalidKeyError(
            f"Idempotency key {key!r} in namespace {namespace!r} contains a NUL character, which neither the "
            "ledger nor the audit trail can store; remove it from the key's template values."
        )
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(
            f"Idempotency key {show_key(key)} in namespace {namespace!r} is {len(key)} characters long; the "
            f"limit is {MAX_KEY_LENGTH}. Use a shorter business key, or replace its long part by a digest "
            "(for example 'invoice-' + fingerprint(document))."
        )
    return key


def validate_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is a non-empty string of at most 128 characters."""
    if (
        not isinstance(namespace, str)
        or not namespace.strip()
        or len(namespace) > MAX_NAMESPACE_LENGTH
        or "\x00" in namespace
    ):
        raise InvalidKeyError(
            f"Idempotency namespace {namespace!r} is not valid: use a non-empty string of at most "
            f"{MAX_NAMESPACE_LENGTH} characters without NUL, for example 'payments'."
        )
    return namespace


def check_durations(key: str, lease_seconds: object, ttl_seconds: object = None) -> None:
    """Refuse a lease or time to live that is not a positive, finite number of seconds within its limit."""
    for name, value, maximum in (
        ("lease_seconds", lease_seconds, MAX_LEASE_SECONDS),
        ("ttl_seconds", ttl_seconds, MAX_TTL_SECONDS),
    ):
        if value is None and name == "ttl_seconds":
            continue
        problem = duration_problem(value, maximum)
        if problem is not None:
            raise LedgerInputError(
                f"{name}={value!r} for idempotency key {show_key(key)} {problem}; give a positive number of "
                f"seconds up to {maximum:,.0f} (lease_seconds default 60; leave ttl_seconds unset to keep the key "
                "forever)."
            )


def validate_fingerprint(value: object, key: str) -> str:
    """Return ``value`` if it is a SHA-256 hex digest as ``inputs_digest()`` makes them."""
    if not isinstance(value, str) or len(value) != 64 or not _HEX.issuperset(value):
        raise LedgerInputError(
            f"Fingerprint {value!r} for idempotency key {show_key(key)} is not a lowercase SHA-256 hex "
            "digest. Compute it with airflow_integrity.store.ledger.codec.inputs_digest(inputs)."
        )
    return value


def _canonical(obj: Any, path: str, scheme: int = FINGERPRINT_SCHEME) -> Any:
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise LedgerInputError(f"Cannot fingerprint {path}: {obj!r} is not a finite number.")
        return obj
    if isinstance(obj, Mapping):
        out = {}
        for name, value in obj.items():
            if not isinstance(name, str):
                raise LedgerInputError(
                    f"Cannot fingerprint {path}: key {name!r} is a {type(name).__name__}; use string keys."
                )
            # Scheme 2: a key of the caller's that starts with "$" gets one more, so that no dict of the
            # caller's reads like the tag of a typed value ({"$decimal": "1"} is not Decimal("1")).
            tagged = "$" + name if scheme >= 2 and name.startswith("$") else name
            out[tagged] = _canonical(value, f"{path}[{name!r}]", scheme)
        return out
    if isinstance(obj, (list, tuple)):
        return [_canonical(value, f"{path}[{i}]", scheme) for i, value in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        items = [_canonical(value, f"{path}{{…}}", scheme) for value in obj]
        return {"$set": sorted(items, key=lambda item: json.dumps(item, sort_keys=True))}
    if isinstance(obj, (dt.datetime, dt.date, dt.time)):
        return {"$" + type(obj).__name__: obj.isoformat()}
    if isinstance(obj, (decimal.Decimal, uuid.UUID)):
        return {"$" + type(obj).__name__.lower(): str(obj)}
    if isinstance(obj, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(obj)).decode("ascii")}
    raise LedgerInputError(
        f"Cannot fingerprint {path}: a {type(obj).__module__}.{type(obj).__qualname__} has no canonical form. "
        "Pass JSON-like values (dict, list, str, numbers, bool, None, datetime, Decimal, UUID, bytes), for "
        "example a dict of the fields that define the effect."
    )


def inputs_digest(obj: Any, *, scheme: int = FINGERPRINT_SCHEME) -> str:
    """SHA-256 (hex) of a canonical serialisation of ``obj``: the same inputs always give the same digest.

    Dicts are serialised with sorted keys, tuples like lists, sets sorted; datetimes, dates, Decimals, UUIDs
    and bytes are tagged with their type (``{"$decimal": "100.00"}``) so that they do not collide with strings,
    and a dict key of the inputs that starts with ``$`` is written with one more ``$``, so that no dict of the
    inputs can read like such a tag (scheme 2). Scheme 1, used before, did not escape those keys; inputs
    without such keys have the same fingerprint in both schemes.

    Args:
        obj: The inputs that define an effect (for example the request body of a payment).
        scheme: The canonical form: :data:`FINGERPRINT_SCHEME` (2), or 1 to recompute a fingerprint stored
            by an earlier version.
    """
    if scheme not in (1, 2):
        raise ValueError(f"Fingerprint scheme {scheme!r} does not exist; use 2 (current) or 1 (before).")
    canonical = json.dumps(
        _canonical(obj, "inputs", scheme),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def legacy_fingerprint(obj: Any) -> str | None:
    """The scheme-1 fingerprint of ``obj`` when it differs from the current one (inputs with a ``$`` key), else
    ``None``: what a key claimed by an earlier version with these inputs has stored."""
    old = inputs_digest(obj, scheme=1)
    return None if old == inputs_digest(obj) else old


_PLAIN = frozenset({str, int, bool, type(None)})


def _find_unserialisable(obj: Any) -> tuple[str, str] | None:
    """Where (a path below ``obj``) and what the first value is that JSON cannot carry exactly, or ``None``.

    Paths are built only on the way back from a problem: this runs on every completed result.
    """
    if type(obj) in _PLAIN:
        return None
    if isinstance(obj, float):
        return None if math.isfinite(obj) else ("", f"is {obj!r}, which JSON cannot represent")
    if isinstance(obj, dict):
        for name, value in obj.items():
            if not isinstance(name, str):
                return ("", f"has the key {name!r} ({type(name).__name__}); JSON keys are strings")
            if type(value) not in _PLAIN:
                found = _find_unserialisable(value)
                if found:
                    return f"[{name!r}]{found[0]}", found[1]
        return None
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            if type(value) not in _PLAIN:
                found = _find_unserialisable(value)
                if found:
                    return f"[{i}]{found[0]}", found[1]
        return None
    if isinstance(obj, (str, int)):  # subclasses, such as enums: stored as their plain value
        return None
    return "", f"is a {type(obj).__module__}.{type(obj).__qualname__}"


@dataclass(frozen=True)
class EncodedResult:
    """A result as stored: its UTF-8 JSON text, size and SHA-256."""

    text: str
    size: int
    sha256: str


def encode_result(result: Any, key: str, *, max_bytes: int) -> EncodedResult:
    """Serialise ``result`` to JSON exactly, or raise naming the key, the offending value and the fix.

    Results must round-trip: dict keys must be strings and numbers finite (tuples are stored as lists).

    Args:
        result: The value the guarded work returned.
        key: Its idempotency key (named in errors).
        max_bytes: The largest result the ledger stores, inline or by reference.
    """
    try:
        problem = _find_unserialisable(result)
    except RecursionError:
        problem = ("", "is nested too deeply or contains itself")
    if problem is None:
        try:
            text = json.dumps(result, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            problem = ("", f"holds a string that is not valid Unicode ({exc.reason}, a lone surrogate)")
        except (ValueError, RecursionError) as exc:  # e.g. an integer of more digits than Python will print
            problem = ("", f"cannot be written as JSON ({str(exc)[:200]})")
    if problem is not None:
        raise ResultNotSerializableError(
            f"The result of idempotency key {show_key(key)} cannot be stored: result{problem[0]} {problem[1]}. "
            "The ledger replays the result to later attempts, so it must be JSON: return dicts with string "
            "keys, lists, strings, finite numbers, booleans and None (convert datetimes with .isoformat(), "
            "Decimals with str())."
        )
    if len(data) > max_bytes:
        raise ResultTooLargeError(
            f"The result of idempotency key {show_key(key)} is {len(data):,} bytes as JSON; the ledger stores "
            f"at most {max_bytes:,} bytes. Store the large payload elsewhere (object storage, a table) and "
            "return a reference to it (its location and fingerprint)."
        )
    return EncodedResult(text=text, size=len(data), sha256=hashlib.sha256(data).hexdigest())


@functools.cache
def _hostname() -> str:
    return socket.gethostname()


def holder_info(**fields: Any) -> dict[str, Any]:
    """Describe the current process as a lease holder: host and pid plus ``fields``.

    Args:
        fields: What identifies the attempt, for example ``dag_id``, ``run_id``, ``task_id``, ``map_index``,
            ``ti_id`` and ``try_number``.
    """
    return {"host": _hostname(), "pid": os.getpid(), **fields}


def encode_holder(holder: Mapping[str, Any] | None, key: str) -> tuple[dict[str, Any], str]:
    """The holder description, with host and pid added when missing, and its JSON text."""
    merged = holder_info(**dict(holder or {}))
    try:
        return merged, json.dumps(merged, sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise LedgerInputError(
            f"The holder of idempotency key {show_key(key)} cannot be stored as JSON ({exc}); describe the "
            "holder with strings and numbers."
        ) from exc


def bound_error(error: object) -> str:
    """An error text of at most 8 KiB; a longer one is shortened with an explicit marker."""
    text = str(error)
    if len(text) <= MAX_ERROR_LENGTH:
        return text
    return text[: MAX_ERROR_LENGTH - 64] + f"… [shortened: {len(text):,} characters in all]"


def require_text(value: object, what: str, key: str, limit: int | None = None) -> str:
    """Return ``value`` if it is a non-empty string (of at most ``limit`` characters)."""
    if not isinstance(value, str) or not value.strip():
        raise LedgerInputError(f"Releasing idempotency key {show_key(key)} needs a {what}; none was given.")
    if limit is not None and len(value) > limit:
        raise LedgerInputError(
            f"The {what} for idempotency key {show_key(key)} is {len(value)} characters; the limit is {limit}."
        )
    return value
