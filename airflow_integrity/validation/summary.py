"""Compact, bounded, JSON-serialisable summaries of GX validation results, honouring expectation severity.

The summary is what goes into XCom and audit events: whether the data passed, GX's statistics, each failed
expectation with a few sample values, and the fingerprints of data and suite. Whatever does not fit the size
bound is dropped with a count saying so, never silently.

What a summary shows of the data's values depends on ``samples``:

``values``
    up to ``sample_size`` unexpected values per failed expectation (clipped to 40 characters), and the
    observed value of column aggregates (e.g. the maximum of a column);
``hashed``
    the same, each value replaced by ``hmac-sha256:`` and the first 16 hex digits of its HMAC-SHA256 under a
    secret key (the integrity store's salt): equal values give equal fingerprints within a store, and without
    the key a fingerprint cannot be tried against candidate values;
``none``
    no values: no samples and no observed values of column aggregates.

Table-level observed values (row and column counts, column lists) describe the table's shape, not its
values, and are shown in every mode.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Literal

from airflow_integrity.validation.suites import ExpectationInfo, LoadedSuite

SampleMode = Literal["values", "hashed", "none"]
SAMPLE_MODES = ("values", "hashed", "none")
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
_MAX_TEXT = 80
_MAX_LIST = 10
_MAX_ERROR = 300


def clip(value: Any, *, text: int = _MAX_TEXT, items: int = _MAX_LIST) -> Any:
    """Shorten a JSON value: long strings end with ``...(+N chars)``, long lists with ``...(+N more)``."""
    if isinstance(value, str):
        return value if len(value) <= text else f"{value[:text]}...(+{len(value) - text} chars)"
    if isinstance(value, (list, tuple)):
        kept = [clip(v, text=text, items=items) for v in value[:items]]
        return kept + ([f"...(+{len(value) - items} more)"] if len(value) > items else [])
    if isinstance(value, Mapping):
        entries = list(value.items())
        clipped = {str(k): clip(v, text=text, items=items) for k, v in entries[:items]}
        if len(entries) > items:
            clipped["..."] = f"+{len(entries) - items} more keys"
        return clipped
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return clip(str(value), text=text, items=items)


def check_samples(samples: str, sample_key: bytes | None) -> None:
    """Check a ``samples`` mode and its key.

    Raises:
        ValueError: An unknown mode, or ``hashed`` without a key.
    """
    if samples not in SAMPLE_MODES:
        raise ValueError(f"samples={samples!r} is not one of {', '.join(map(repr, SAMPLE_MODES))}.")
    if samples == "hashed" and not sample_key:
        raise ValueError(
            "samples='hashed' needs sample_key=, the secret that keys the fingerprints (IntegrityCheckHook passes "
            "the integrity store's salt); an unkeyed hash of a low-entropy value can be reversed by trying values."
        )


def keyed_fingerprint(value: Any, key: bytes) -> str:
    """``hmac-sha256:`` and 16 hex digits: the HMAC-SHA256 under ``key`` of the value's canonical JSON."""
    canonical = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return "hmac-sha256:" + hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()[:16]


def _sample(value: Any, mode: SampleMode, key: bytes | None) -> Any:
    if mode == "hashed":
        if key is None:  # build_summary checks; kept so no path can fall back to an unkeyed hash
            raise ValueError("samples='hashed' needs sample_key=.")
        return keyed_fingerprint(value, key)
    return clip(value, text=40, items=5)


def exception_message(result: Mapping[str, Any]) -> str | None:
    """The message of the exception GX caught while evaluating an expectation, if any."""
    info = result.get("exception_info") or {}
    candidates = [info] + [v for v in info.values() if isinstance(v, Mapping)]
    for candidate in candidates:
        if candidate.get("raised_exception"):
            message = str(candidate.get("exception_message") or "an exception was raised").strip()
            return message if len(message) <= _MAX_ERROR else message[:_MAX_ERROR] + "..."
    return None


def match_results(results: list[Mapping[str, Any]], suite: LoadedSuite) -> list[tuple[ExpectationInfo, Mapping]]:
    """Pair each GX expectation result with the suite's expectation, in suite order (GX reorders results)."""
    by_id = suite.by_id()
    paired = []
    for result in results:
        config = result.get("expectation_config") or {}
        info = by_id.get(str(config.get("id")))
        if info is None:  # a result whose id GX did not echo: fall back to type and arguments
            kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
            info = next(
                (e for e in suite.expectations if e.type == config.get("type") and e.kwargs == kwargs),
                None,
            )
        if info is not None:
            paired.append((info, result))
    paired.sort(key=lambda pair: pair[0].index)
    return paired


def _failure(
    info: ExpectationInfo,
    result: Mapping[str, Any],
    sample_size: int,
    samples: SampleMode,
    sample_key: bytes | None,
) -> dict:
    body = result.get("result") or {}
    entry: dict[str, Any] = {"index": info.index, "type": info.type, "severity": info.severity}
    if len(info.columns) == 1:
        entry["column"] = info.columns[0]
    elif info.columns:
        entry["columns"] = clip(list(info.columns))
    entry["kwargs"] = clip({k: v for k, v in info.kwargs.items() if k not in ("column", "column_list")})
    for key in ("element_count", "unexpected_count", "unexpected_percent", "missing_count"):
        if body.get(key) is not None:
            entry[key] = body[key]
    if "observed_value" in body:
        observed = body["observed_value"]
        if not info.columns or samples == "values":  # table-level: counts and column names, not values
            entry["observed_value"] = clip(observed, text=40, items=5)
        elif samples == "hashed":
            entry["observed_value"] = _sample(observed, samples, sample_key)
    error = exception_message(result)
    if error:
        entry["error"] = error
    partial = body.get("partial_unexpected_list")
    if samples != "none" and partial:
        entry["samples"] = [_sample(v, samples, sample_key) for v in partial[:sample_size]]
        if body.get("unexpected_count") is None and len(partial) > sample_size:
            entry["samples_omitted"] = len(partial) - sample_size
    return entry


def build_summary(
    result: Mapping[str, Any],
    suite: LoadedSuite,
    data: Mapping[str, Any],
    *,
    result_format: str,
    sample_size: int = 5,
    samples: SampleMode = "values",
    sample_key: bytes | None = None,
    max_bytes: int = 16 * 1024,
) -> dict[str, Any]:
    """Summarise a GX suite result (``ExpectationSuiteValidationResult.to_json_dict()``).

    Args:
        result: The GX result as a JSON dict.
        suite: The suite it was run with.
        data: Description of the data (fingerprint, kind, rows, columns, source).
        result_format: The GX result format the run used.
        sample_size: At most this many sample unexpected values per failed expectation (≤ 5 advised).
        samples: ``values`` (clipped to 40 characters), ``hashed`` (keyed fingerprints, for sensitive data), or
            ``none`` (see the module's docstring).
        sample_key: The secret key of ``hashed`` fingerprints (the integrity store's salt); required for it.
        max_bytes: Upper bound of the summary's JSON size; failures beyond it are dropped and counted.

    Returns:
        A JSON-serialisable dict; ``success`` is false only when an expectation of severity ``critical`` failed
        (``gx_success`` is GX's own verdict, which ignores severity).

    Raises:
        ValueError: An unknown ``samples`` mode, or ``hashed`` without ``sample_key``.
    """
    check_samples(samples, sample_key)
    paired = match_results(list(result.get("results") or []), suite)
    failed = [(info, res) for info, res in paired if not res.get("success")]
    failed.sort(key=lambda pair: (SEVERITY_ORDER.get(pair[0].severity, 0), pair[0].index))
    counts = {severity: 0 for severity in SEVERITY_ORDER}
    for info, _ in failed:
        counts[info.severity if info.severity in counts else "critical"] += 1
    suite_identity = suite.describe()
    suite_identity["name"] = clip(suite_identity["name"], text=200)
    summary: dict[str, Any] = {
        "success": counts["critical"] == 0,
        "gx_success": bool(result.get("success")),
        "statistics": dict(result.get("statistics") or {}),
        "failed_by_severity": counts,
        "failures": [_failure(info, res, sample_size, samples, sample_key) for info, res in failed],
        "failures_omitted": 0,
        "suite": suite_identity,
        "data": clip(dict(data), text=200),
        "result_format": result_format,
    }
    return bound_summary(summary, max_bytes)


def _size(value: Any) -> int:
    return len(json.dumps(value, default=str).encode())


def bound_summary(summary: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Shrink a summary until its JSON fits ``max_bytes``: drop samples, then whole failures (counted)."""
    if _size(summary) <= max_bytes:
        return summary
    for failure in summary["failures"]:
        if "samples" in failure:
            failure["samples_omitted"] = failure.get("samples_omitted", 0) + len(failure.pop("samples"))
        failure["kwargs"] = clip(failure.get("kwargs", {}), text=20, items=3)
    failures = summary["failures"]
    while failures and _size(summary) > max_bytes:
        # Drop the least severe, latest failures first; critical ones are the reason the data stops.
        failures.pop()
        summary["failures_omitted"] += 1
    return summary
