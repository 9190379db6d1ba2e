"""Reasoned waivers: a DAG author accepts a finding, in the DAG file, with the reason a reviewer will read.

A comment on the line a finding points at, or in the comment lines right above it::

    # integrity-lint: ignore[unvalidated-handoff]: the claim is the run's parameters,
    # checked against their schema when the run is triggered
    @task
    def assess(claim): ...

waives the findings of those kinds (comma-separated) for that task; the reason may go on over the comment
lines that follow. A waiver without a reason waives nothing. Reports list what was waived, and why, beside
what was found.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from airflow_integrity.lint.findings import Finding

_WAIVER = re.compile(r"#\s*integrity-lint:\s*ignore\[(?P<kinds>[a-z, -]+)\]\s*:?\s*(?P<reason>.*)$")


@lru_cache(maxsize=256)
def _lines(path: str) -> tuple[str, ...]:
    try:
        return tuple(Path(path).read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError):
        return ()


def waiver(path: str, finding: Finding) -> tuple[Finding, str | None]:
    """``(finding, reason)``: the reason when a waiver in ``path`` covers the finding, else ``None`` (and the
    finding says what its waiver lacks, if it has one without a reason)."""
    if not finding.located:
        return finding, None  # the line is its DAG's, not the task's: a waiver there would cover other tasks
    lines = _lines(path)
    block = _comment_block_above(lines, finding.line)
    for position, number in enumerate(block):
        match = _WAIVER.search(lines[number - 1])
        if match is None or finding.kind not in {kind.strip() for kind in match["kinds"].split(",")}:
            continue
        more = (_comment_text(lines[later - 1]) for later in block[position + 1 :])
        reason = " ".join(part for part in (match["reason"].strip(), *more) if part)
        if reason:
            return finding, reason
        note = f" (the waiver on line {number} gives no reason, so it waives nothing)"
        return replace(finding, message=finding.message + note), None
    return finding, None


def _comment_block_above(lines: tuple[str, ...], line: int) -> list[int]:
    """The finding's own line and the unbroken comment lines above it, top to bottom (1-based)."""
    numbers = [line] if 1 <= line <= len(lines) else []
    above = line - 1
    while 1 <= above <= len(lines) and lines[above - 1].lstrip().startswith("#"):
        numbers.insert(0, above)
        above -= 1
    return numbers


def _comment_text(line: str) -> str:
    stripped = line.strip()
    return stripped.lstrip("#").strip() if stripped.startswith("#") else ""
