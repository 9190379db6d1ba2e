"""Integrity coverage of DAGs: what ``airflow integrity lint`` reports.

Per DAG, parsed as Airflow parses it: data handed from task to task that no validation guards, tasks whose
operators have known external effects and carry no idempotency key, keyed effects without an undo in DAGs that
compensate, and human-in-the-loop tasks whose signatures have no stated meaning. :func:`lint_paths` is the
entry point; each module holds one rule's knowledge.
"""

from __future__ import annotations

from airflow_integrity.lint.findings import KINDS, Finding
from airflow_integrity.lint.run import LintReport, lint_paths

__all__ = ["KINDS", "Finding", "LintReport", "lint_paths"]
