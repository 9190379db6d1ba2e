"""Find and cheaply check suite references without importing Great Expectations.

A suite reference is one of:

* a GX ``ExpectationSuite``, or a list of GX expectation objects and/or expectation dicts
  (``{"type": ..., "kwargs": {...}, "meta": {...}, "severity": "warning"}``);
* a dict in GX's suite JSON format (``{"name": ..., "expectations": [...]}``);
* a path to a suite JSON file as GX writes it (a ``str`` ending in ``.json`` or any ``os.PathLike``);
* a suite name (a ``str`` not ending in ``.json``), looked up in a GX file context directory the way GX
  stores it: ``<project>/gx/expectations/<name with dots as folders>.json``.

:func:`check_suite_reference` is what a DAG file may afford at parse time: it reads at most one small JSON
file and checks its shape. Building the GX objects (unknown expectation types, argument types) happens in
:func:`airflow_integrity.validation.suites.load_suite`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_integrity.validation.errors import SuiteError

SEVERITIES = ("critical", "warning", "info")
# Keys GX writes (or accepts) for one expectation in a suite file; "expectation_type" is the pre-1.0 name.
EXPECTATION_KEYS = frozenset(
    {"type", "expectation_type", "kwargs", "meta", "notes", "description", "severity", "id", "rendered_content"}
)


def is_gx_object(obj: object) -> bool:
    """Whether ``obj`` is an object of the Great Expectations library (checked without importing it)."""
    return type(obj).__module__.split(".", 1)[0] == "great_expectations"


def looks_like_path(ref: object) -> bool:
    """Whether a string or path reference names a JSON file rather than a suite in a GX context."""
    if isinstance(ref, os.PathLike):
        return True
    return isinstance(ref, str) and ref.strip().lower().endswith(".json")


def expectations_dir(context_dir: str | os.PathLike[str]) -> Path:
    """The expectations store folder of a GX file context given its project root or its ``gx`` folder.

    Args:
        context_dir: The GX project root (holding ``gx/``) or the ``gx`` folder itself.

    Raises:
        SuiteError: When neither ``<dir>/gx/expectations`` nor ``<dir>/expectations`` exists.
    """
    root = Path(context_dir).expanduser()
    for candidate in (root / "gx" / "expectations", root / "expectations"):
        if candidate.is_dir():
            return candidate
    raise SuiteError(
        f"GX context directory {str(root)!r} has no expectations store (looked for "
        f"{str(root / 'gx' / 'expectations')!r} and {str(root / 'expectations')!r}). Pass the GX project root "
        "(the folder that holds gx/) as context_dir."
    )


def _suite_names_in(folder: Path) -> list[str]:
    names = []
    for path in sorted(folder.rglob("*.json")):
        relative = path.relative_to(folder).with_suffix("")
        names.append(".".join(relative.parts))
    return names


def resolve_suite_path(ref: str | os.PathLike[str], *, context_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the suite JSON file a path or a suite name refers to.

    Args:
        ref: A path to a suite JSON file, or the name of a suite in the GX context at ``context_dir``.
        context_dir: The GX project root; needed only when ``ref`` is a suite name.

    Raises:
        SuiteError: The file does not exist, or the name is not a suite of the context (closest names listed).
    """
    if looks_like_path(ref):
        path = Path(os.fspath(ref)).expanduser()
        if not path.is_file():
            raise SuiteError(
                f"Suite file {str(path)!r} does not exist. Check the path (relative paths are resolved against "
                f"the working directory {os.getcwd()!r}), or pass the suite as a Python list of expectations."
            )
        return path
    name = str(ref).strip()
    if not name:
        raise SuiteError("The suite reference is an empty string; pass a suite name, a .json path or a suite.")
    if context_dir is None:
        raise SuiteError(
            f"Suite {name!r} is not a .json file path, so it is taken as the name of a suite in a GX file "
            "context, but no context directory was given. Pass context_dir=<GX project root>, or a path ending "
            "in .json."
        )
    folder = expectations_dir(context_dir)
    for candidate in (folder.joinpath(*name.split(".")).with_suffix(".json"), folder / f"{name}.json"):
        if candidate.is_file():
            return candidate
    import difflib

    known = _suite_names_in(folder)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = ", ".join(repr(k) for k in known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
    raise SuiteError(
        f"Suite {name!r} is not in the GX context at {str(folder)!r}.{hint} "
        f"Suites there: {listing or 'none'}. Create it with context.suites.add(...) or fix the name."
    )


def read_suite_file(path: Path) -> dict[str, Any]:
    """Parse a suite JSON file, naming the file, line and column of any syntax error.

    Raises:
        SuiteError: Unreadable file, malformed JSON, or a top level that is not a JSON object.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(
            f"Suite file {str(path)!r} cannot be read: {exc}. Check its permissions and encoding."
        ) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteError(
            f"Suite file {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
            "Fix the file, or re-export it from GX (context.suites.add / suite.save())."
        ) from None
    if not isinstance(doc, dict):
        raise SuiteError(
            f"Suite file {str(path)!r} holds a JSON {type(doc).__name__}, not a suite object "
            '({"name": ..., "expectations": [...]}).'
        )
    return doc


def suite_name_of(doc: Mapping[str, Any], default: str) -> str:
    """The suite's name in GX's JSON format (``name``; ``expectation_suite_name`` before GX 1.0)."""
    name = doc.get("name") or doc.get("expectation_suite_name")
    return name if isinstance(name, str) and name else default


def expectation_label(index: int, entry: object) -> str:
    """``expectation #3 (expect_column_values_to_not_be_null)``: how errors name one expectation."""
    type_name = None
    if isinstance(entry, Mapping):
        type_name = entry.get("type") or entry.get("expectation_type")
    elif is_gx_object(entry):
        type_name = getattr(entry, "expectation_type", None) or getattr(entry, "type", None)
    return f"expectation #{index} ({type_name})" if isinstance(type_name, str) else f"expectation #{index}"


def check_expectation_entry(entry: Mapping[str, Any], *, suite_label: str, index: int) -> None:
    """Check the shape of one expectation dict (not whether GX knows its type or accepts its arguments).

    Raises:
        SuiteError: Naming the suite, the expectation's index and type, and what is wrong.
    """
    where = f"{suite_label}, {expectation_label(index, entry)}"
    type_name = entry.get("type", entry.get("expectation_type"))
    if not isinstance(type_name, str) or not type_name:
        raise SuiteError(f"{where}: has no 'type' (a string such as 'expect_column_values_to_not_be_null').")
    unknown = sorted(set(entry) - EXPECTATION_KEYS)
    if unknown:
        raise SuiteError(
            f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}; an expectation has "
            f"{', '.join(sorted(EXPECTATION_KEYS - {'expectation_type', 'rendered_content'}))}. "
            "Arguments of the check go inside 'kwargs'."
        )
    kwargs = entry.get("kwargs", {})
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise SuiteError(f"{where}: 'kwargs' must be an object of arguments, not a {type(kwargs).__name__}.")
    meta = entry.get("meta")
    if meta is not None and not isinstance(meta, Mapping):
        raise SuiteError(f"{where}: 'meta' must be an object, not a {type(meta).__name__}.")
    severity = entry.get("severity")
    if severity is not None and (not isinstance(severity, str) or severity.lower() not in SEVERITIES):
        raise SuiteError(f"{where}: severity {severity!r} is not one of {', '.join(SEVERITIES)}.")


def check_suite_document(doc: Mapping[str, Any], *, suite_label: str) -> None:
    """Check the shape of a suite in GX's JSON format.

    Raises:
        SuiteError: Naming the suite and, where it applies, the expectation.
    """
    expectations = doc.get("expectations")
    if not isinstance(expectations, list):
        found = (
            "no 'expectations' key"
            if expectations is None
            else f"'expectations' is a {type(expectations).__name__}"
        )
        raise SuiteError(f"{suite_label}: {found}; a suite needs an 'expectations' list.")
    check_expectation_list(expectations, suite_label=suite_label)


def check_expectation_list(items: Sequence[Any], *, suite_label: str) -> None:
    """Check each item of a list of expectations is a GX expectation or a well-shaped expectation dict."""
    for index, entry in enumerate(items):
        if isinstance(entry, Mapping):
            check_expectation_entry(entry, suite_label=suite_label, index=index)
        elif not is_gx_object(entry):
            raise SuiteError(
                f"{suite_label}, expectation #{index}: a {type(entry).__name__} is neither a GX expectation nor "
                'an expectation dict ({"type": ..., "kwargs": {...}}).'
            )


def describe_reference(ref: object) -> str:
    """A short label for a suite reference, used at the start of error messages."""
    if isinstance(ref, (str, os.PathLike)):
        return f"suite {os.fspath(ref)!r}"
    if isinstance(ref, Mapping):
        return f"suite {suite_name_of(ref, '<unnamed>')!r}"
    name = getattr(ref, "name", None)
    if is_gx_object(ref) and isinstance(name, str):
        return f"suite {name!r}"
    return "inline suite"


def check_suite_reference(ref: object, *, context_dir: str | os.PathLike[str] | None = None) -> str:
    """Cheap, parse-time check of a suite reference; never imports Great Expectations.

    Checks that a referenced file exists and holds well-formed suite JSON, and that in-memory suites have the
    right shape. Unknown expectation types and bad arguments are found by ``load_suite``.

    Args:
        ref: Any suite reference (see the module documentation).
        context_dir: The GX project root, for suite names.

    Returns:
        The suite's name (or a label for an unnamed inline suite).

    Raises:
        SuiteError: What is wrong, naming the suite and the expectation.
    """
    if isinstance(ref, (str, os.PathLike)):
        path = resolve_suite_path(ref, context_dir=context_dir)
        doc = read_suite_file(path)
        label = f"suite file {str(path)!r}"
        check_suite_document(doc, suite_label=label)
        return suite_name_of(doc, path.stem)
    if isinstance(ref, Mapping):
        label = describe_reference(ref)
        check_suite_document(ref, suite_label=label)
        return suite_name_of(ref, "<unnamed>")
    if is_gx_object(ref):
        name = getattr(ref, "name", None)
        if isinstance(name, str) and hasattr(ref, "expectations"):
            return name
        return "inline suite"
    if isinstance(ref, Sequence) and not isinstance(ref, (bytes, bytearray)):
        check_expectation_list(ref, suite_label="inline suite")
        return "inline suite"
    raise SuiteError(
        f"A suite reference cannot be of type {type(ref).__name__}. Pass a GX ExpectationSuite, a list of "
        "expectations, a suite dict, a path to a suite .json file, or a suite name with context_dir."
    )
