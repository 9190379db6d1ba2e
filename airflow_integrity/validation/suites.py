"""Build Great Expectations suites from any suite reference, failing early with the expectation named.

GX's own ``ExpectationSuite(expectations=[...])`` logs and silently drops an expectation whose configuration is
invalid; here every expectation is built one by one so that an unknown type or a bad argument stops the load
with the suite, the expectation's index and type, and the fix in the message.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_integrity.validation.errors import SuiteError
from airflow_integrity.validation.suite_refs import (
    check_expectation_entry,
    check_suite_document,
    describe_reference,
    expectation_label,
    is_gx_object,
    read_suite_file,
    resolve_suite_path,
    suite_name_of,
)

_COLUMN_DOMAIN_KEYS = ("column", "column_A", "column_B", "column_list")
# Arguments every expectation accepts; left out of "accepted arguments" hints to keep them short.
_COMMON_FIELDS = frozenset(
    {"id", "meta", "notes", "result_format", "description", "catch_exceptions", "rendered_content", "severity"}
    | {"windows", "batch_id", "row_condition", "condition_parser"}
)
_ID_NAMESPACE = uuid.UUID("6f0d3f38-52a6-4d8b-9a0e-3f1c1d3b7a21")


@dataclass(frozen=True)
class ExpectationInfo:
    """What the validation layer needs to know about one expectation of a loaded suite.

    Args:
        index: Position in the suite (0-based), as used in error messages and summaries.
        id: The expectation's id; results are matched back to the suite through it.
        type: The snake-case expectation type, e.g. ``expect_column_values_to_not_be_null``.
        kwargs: The expectation's arguments as GX serialises them (JSON-compatible).
        severity: ``critical``, ``warning`` or ``info``.
        columns: Columns the expectation evaluates (its domain), empty for table-level checks.
        row_level: Whether it judges each row (a column, column-pair or multicolumn map expectation).
    """

    index: int
    id: str
    type: str
    kwargs: dict[str, Any]
    severity: str
    columns: tuple[str, ...]
    row_level: bool


@dataclass(frozen=True)
class LoadedSuite:
    """A suite ready to run: the GX object plus what summaries and quarantine need.

    Args:
        name: The suite's name.
        source: Where it came from (``file:<path>``, ``python``).
        fingerprint: ``sha256:<hex>`` of the suite's name and each expectation's type, arguments and severity.
        expectations: One ``ExpectationInfo`` per expectation, in suite order.
        gx_suite: The ``great_expectations.ExpectationSuite`` to validate with (ids assigned).
    """

    name: str
    source: str
    fingerprint: str
    expectations: tuple[ExpectationInfo, ...]
    gx_suite: Any = field(repr=False, compare=False)

    def by_id(self) -> dict[str, ExpectationInfo]:
        """Expectations keyed by id."""
        return {info.id: info for info in self.expectations}

    def describe(self) -> dict[str, Any]:
        """The JSON-serialisable identity of the suite used in summaries and audit events."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "source": self.source,
            "expectations": len(self.expectations),
        }


def _registered_types() -> list[str]:
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    return list_registered_expectation_implementations()


def _expectation_class(type_name: str, where: str) -> type:
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        return get_expectation_impl(type_name)
    except ExpectationNotFoundError:
        close = difflib.get_close_matches(type_name, _registered_types(), n=3, cutoff=0.6)
        hint = f" Closest known expectations: {', '.join(close)}." if close else ""
        raise SuiteError(
            f"{where}: unknown expectation type {type_name!r}.{hint} A custom expectation must be imported "
            "(its module loaded) before the suite is loaded; the GX gallery lists the built-in ones."
        ) from None


def _accepted_arguments(cls: type) -> list[str]:
    fields = getattr(cls, "__fields__", {})
    return sorted(name for name in fields if name not in _COMMON_FIELDS)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _explain_pydantic(cls: type, errors: list[dict[str, Any]], kwargs: Mapping[str, Any]) -> str:
    by_field: dict[str, list[str]] = {}
    for error in errors:
        loc = error.get("loc") or ("__root__",)
        by_field.setdefault(str(loc[0]), []).append(str(error.get("msg", "invalid")))
    if len(by_field) > 1:  # checks across arguments often fail only because one argument was rejected
        by_field.pop("__root__", None)
    accepted = _accepted_arguments(cls)
    problems = []
    for name, messages in by_field.items():
        if name == "__root__":
            problems.extend(messages)
        elif any(m == "field required" for m in messages):
            problems.append(f"missing required argument {name!r}")
        elif any(m.startswith("extra fields not permitted") for m in messages):
            close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)
            problems.append(f"unknown argument {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        else:
            # GX accepts a {"$PARAMETER": ...} dict for most arguments; that alternative is noise here.
            wanted = [m for m in messages if "valid dict" not in m] or messages
            value = _short(kwargs.get(name, "<missing>"))
            problems.append(f"argument {name!r}={value}: {' or '.join(dict.fromkeys(wanted))}")
    return "; ".join(problems) + f". Accepted arguments: {', '.join(accepted)}."


def _build_expectation(entry: Mapping[str, Any], *, suite_label: str, index: int) -> Any:
    check_expectation_entry(entry, suite_label=suite_label, index=index)
    where = f"{suite_label}, {expectation_label(index, entry)}"
    type_name = entry.get("type") or entry.get("expectation_type")
    cls = _expectation_class(str(type_name), where)
    kwargs = dict(entry.get("kwargs") or {})
    arguments: dict[str, Any] = {
        key: entry[key] for key in ("id", "meta", "notes", "description") if entry.get(key) is not None
    }
    if entry.get("severity") is not None:
        arguments["severity"] = str(entry["severity"]).lower()
    arguments.update(kwargs)
    try:
        return cls(**arguments)
    except Exception as exc:
        errors = getattr(exc, "errors", None)
        if callable(errors):
            detail = _explain_pydantic(cls, list(errors()), arguments)
        else:
            detail = f"{type(exc).__name__}: {exc}"
        raise SuiteError(f"{where}: {detail}") from None


def _expectations_from(items: Sequence[Any], *, suite_label: str) -> list[Any]:
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    built = []
    for index, item in enumerate(items):
        if isinstance(item, Expectation):
            built.append(item)
        elif isinstance(item, ExpectationConfiguration):
            built.append(_build_expectation(item.to_json_dict(), suite_label=suite_label, index=index))
        elif isinstance(item, Mapping):
            built.append(_build_expectation(item, suite_label=suite_label, index=index))
        else:
            raise SuiteError(
                f"{suite_label}, expectation #{index}: a {type(item).__name__} is neither a GX expectation nor "
                'an expectation dict ({"type": ..., "kwargs": {...}}).'
            )
    return built


def _json_compatible(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _severity_of(expectation: Any) -> str:
    severity = getattr(expectation, "severity", "critical")
    return str(getattr(severity, "value", severity)).lower()


def _domain_columns(cls: type, kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    columns: list[str] = []
    for key in _COLUMN_DOMAIN_KEYS:
        if key not in getattr(cls, "domain_keys", ()):
            continue
        value = kwargs.get(key)
        if isinstance(value, str):
            columns.append(value)
        elif isinstance(value, list):
            columns.extend(str(v) for v in value)
    return tuple(columns)


def _assemble(name: str | None, source: str, expectations: list[Any]) -> LoadedSuite:
    import great_expectations as gx
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    configs = []
    for expectation in expectations:
        kwargs = expectation.configuration.kwargs
        kwargs.pop("batch_id", None)
        configs.append((expectation, _json_compatible(dict(kwargs))))
    checks = [{"type": e.expectation_type, "kwargs": kw, "severity": _severity_of(e)} for e, kw in configs]
    if name is None:
        name = "inline-" + hashlib.sha256(_canonical(checks).encode()).hexdigest()[:12]
    digest = hashlib.sha256(_canonical({"name": name, "expectations": checks}).encode()).hexdigest()
    fingerprint = f"sha256:{digest}"
    seen: set[str] = set()
    copies, infos = [], []
    for index, (expectation, kwargs) in enumerate(configs):
        exp_id = expectation.id
        if not exp_id or exp_id in seen:
            exp_id = str(uuid.uuid5(_ID_NAMESPACE, f"{digest}/{index}"))
        seen.add(exp_id)
        copies.append(expectation.copy(update={"id": exp_id}, deep=True))
        cls = type(expectation)
        infos.append(
            ExpectationInfo(
                index=index,
                id=exp_id,
                type=expectation.expectation_type,
                kwargs=kwargs,
                severity=_severity_of(expectation),
                columns=_domain_columns(cls, kwargs),
                row_level=issubclass(
                    cls, (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)
                ),
            )
        )
    # Configurations (not objects) are how GX itself loads a stored suite with ids.
    gx_suite = gx.ExpectationSuite(name=name, expectations=[c.configuration for c in copies])
    if len(gx_suite.expectations) != len(copies):  # GX drops invalid ones with only a log line
        raise SuiteError(f"suite {name!r}: GX refused some expectations while assembling the suite; see the log.")
    return LoadedSuite(
        name=name, source=source, fingerprint=fingerprint, expectations=tuple(infos), gx_suite=gx_suite
    )


def load_suite(
    ref: Any,
    *,
    context_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> LoadedSuite:
    """Load any suite reference into GX objects, checking every expectation.

    Args:
        ref: A GX ``ExpectationSuite``; a list of GX expectations and/or expectation dicts; a suite dict in
            GX's JSON format; a path to a suite JSON file; or a suite name in the GX context at ``context_dir``.
        context_dir: The GX project root (holding ``gx/``), for suite names.
        name: Name for an inline list of expectations (default ``inline-<fingerprint prefix>``).

    Returns:
        The loaded suite. The caller's objects are not modified (expectations are copied).

    Raises:
        SuiteError: Missing file, malformed JSON, unknown expectation type, missing or badly typed argument;
            the message names the suite, the expectation (index and type) and the fix.
    """
    if isinstance(ref, LoadedSuite):
        return ref
    if isinstance(ref, (str, os.PathLike)):
        path = resolve_suite_path(ref, context_dir=context_dir)
        doc = read_suite_file(path)
        label = f"suite file {str(path)!r}"
        check_suite_document(doc, suite_label=label)
        suite_name = suite_name_of(doc, path.stem)
        return _assemble(suite_name, f"file:{path}", _expectations_from(doc["expectations"], suite_label=label))
    if isinstance(ref, Mapping):
        label = describe_reference(ref)
        check_suite_document(ref, suite_label=label)
        inline_name = suite_name_of(ref, name or "") or None
        return _assemble(inline_name, "python", _expectations_from(ref["expectations"], suite_label=label))
    if is_gx_object(ref) and hasattr(ref, "expectations") and isinstance(getattr(ref, "name", None), str):
        return _assemble(ref.name, "python", list(ref.expectations))
    if is_gx_object(ref):
        ref = [ref]
    if isinstance(ref, Sequence) and not isinstance(ref, (bytes, bytearray)):
        expectations = _expectations_from(ref, suite_label=f"suite {name!r}" if name else "inline suite")
        return _assemble(name, "python", expectations)
    raise SuiteError(
        f"A suite reference cannot be of type {type(ref).__name__}. Pass a GX ExpectationSuite, a list of "
        "expectations, a suite dict, a path to a suite .json file, or a suite name with context_dir."
    )
