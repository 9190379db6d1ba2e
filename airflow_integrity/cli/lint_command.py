"""``airflow integrity lint [PATH ...]``: the integrity coverage of DAG files, for people and for CI."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator

from airflow.cli.cli_config import Arg

from airflow_integrity.cli.exits import usage_error
from airflow_integrity.lint.findings import KINDS

ARG_PATHS = Arg(
    ("paths",),
    metavar="PATH",
    nargs="*",
    help="DAG files or folders (default: [core] dags_folder), parsed as the DAG processor parses them",
)
ARG_FAIL_ON = Arg(
    ("--fail-on",),
    metavar="KINDS",
    default="any",
    help="Exit 1 when a finding of these kinds is left (comma-separated: "
    + ", ".join(KINDS)
    + "; 'any', the default, or 'none' to only report). Waived findings never fail. Exit 2: a path that "
    "does not exist or an unknown kind",
)
ARG_JSON = Arg(("--json",), help="Print the report as JSON", action="store_true")
LINT_ARGS = (ARG_PATHS, ARG_FAIL_ON, ARG_JSON)


@contextlib.contextmanager
def _output_to_stderr() -> Iterator[None]:
    """Send what parsing writes (Airflow's logs, DAG files' prints) to standard error: the report alone goes to
    standard output. At the descriptor, since the log handlers hold the stream they were given."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _fail_on(value: str) -> set[str]:
    wanted = {part.strip() for part in value.split(",") if part.strip()}
    if wanted == {"any"}:
        return set(KINDS)
    if wanted == {"none"}:
        return set()
    unknown = sorted(wanted - set(KINDS))
    if unknown or not wanted:
        usage_error(f"--fail-on {value!r}: unknown kind {unknown}; use any, none, or some of: {', '.join(KINDS)}")
    return wanted


def lint(args: argparse.Namespace) -> None:
    """Report the DAGs' integrity coverage; exit 1 when findings of the ``--fail-on`` kinds are left."""
    from airflow_integrity.compat import conf
    from airflow_integrity.lint import lint_paths

    failing_kinds = _fail_on(args.fail_on)
    paths = args.paths or [conf.get("core", "dags_folder")]
    try:
        with _output_to_stderr():
            report = lint_paths(paths)
    except FileNotFoundError as exc:
        usage_error(str(exc))
    failing = report.failing(failing_kinds)
    if args.json:
        print(json.dumps({**report.as_dict(), "failing": len(failing)}, indent=2))
    else:
        for finding in report.findings:
            print(finding.text())
        for finding, reason in report.waived:
            where = f"{finding.dag_id}.{finding.task_id}"
            print(f"{finding.file}:{finding.line}: {where}: {finding.kind} waived: {reason}")
        counts = ", ".join(f"{count} {kind}" for kind, count in report.counts().items()) or "no findings"
        print(f"{len(report.dags)} DAGs: {counts}; {len(report.waived)} waived.")
    if failing:
        sys.exit(1)
