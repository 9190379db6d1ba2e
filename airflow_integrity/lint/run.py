"""Parse DAG files as Airflow does and lint every DAG they define."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_integrity.lint.checks import lint_dag
from airflow_integrity.lint.findings import IMPORT_ERROR, KINDS, Finding
from airflow_integrity.lint.waivers import waiver

_TRACEBACK_LINE = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


@dataclass
class LintReport:
    """What :func:`lint_paths` found: the DAGs it read (id -> file), the findings in file order, and the
    findings the DAG files waive, with their reasons."""

    dags: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    waived: list[tuple[Finding, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counted = Counter(finding.kind for finding in self.findings)
        return {kind: counted[kind] for kind in KINDS if counted[kind]}

    def failing(self, kinds: Iterable[str]) -> list[Finding]:
        wanted = set(kinds)
        return [finding for finding in self.findings if finding.kind in wanted]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dags": [{"dag_id": dag_id, "file": file} for dag_id, file in sorted(self.dags.items())],
            "findings": [finding.as_dict() for finding in self.findings],
            "counts": self.counts(),
            "waived": [{**finding.as_dict(), "reason": reason} for finding, reason in self.waived],
        }


def lint_paths(paths: Sequence[str | Path], *, relative_to: Path | None = None) -> LintReport:
    """Parse every DAG file under ``paths`` (files or folders) with Airflow's ``DagBag`` and lint each DAG.

    Files are read the way the DAG processor reads them (``.airflowignore``, ``[core]
    dag_discovery_safe_mode``); a file that fails to import is an ``import-error`` finding, not a crash.

    Raises:
        FileNotFoundError: A path that does not exist (named).
    """
    base = relative_to or Path.cwd()
    report = LintReport()
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise FileNotFoundError(f"{given}: no such file or folder")
        bag = _dag_bag(path)
        for file, error in sorted(bag.import_errors.items()):
            report.findings.append(_import_error(file, str(error), base))
        for dag_id, dag in sorted(bag.dags.items()):
            shown = _shown(dag.fileloc, base)
            report.dags[dag_id] = shown
            for found in lint_dag(dag, shown):
                finding, reason = waiver(dag.fileloc, found)
                if reason is None:
                    report.findings.append(finding)
                else:
                    report.waived.append((finding, reason))
    report.findings.sort()
    report.waived.sort()
    return report


def _dag_bag(path: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    # A file named on purpose is read whatever the safe mode says; a folder as the DAG processor reads it.
    safe_mode = False if path.is_file() else None
    kwargs: dict[str, Any] = {"dag_folder": str(path.resolve()), "load_op_links": False}
    if safe_mode is not None:
        kwargs["safe_mode"] = safe_mode
    return DagBag(**kwargs)


def _import_error(file: str, error: str, base: Path) -> Finding:
    line = 1
    for match in _TRACEBACK_LINE.finditer(error):
        if os.path.realpath(match["file"]) == os.path.realpath(file):
            line = int(match["line"])
    summary = error.strip().splitlines()[-1] if error.strip() else "import failed"
    return Finding(_shown(file, base), line, IMPORT_ERROR, None, None, summary)


def _shown(file: str, base: Path) -> str:
    try:
        return str(Path(file).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(file)
