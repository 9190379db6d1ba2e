"""``airflow integrity report DAG_ID``: a DAG's error budgets and error figures, measured from its trail."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.cli.cli_config import Arg

from airflow_integrity.cli.args import ARG_CONN_ID
from airflow_integrity.cli.exits import usage_error

ARG_DAG_ID = Arg(("dag_id",), help="The DAG to report on")
ARG_SINCE = Arg(
    ("--since",),
    help="Measure every budget from this ISO-8601 time (UTC if no zone) or this long ago (30d, 12h, 90m) "
    "instead of over its own window; default: each budget's window, 30 days for the figures. Exit codes: 0 all "
    "budgets kept, 1 a budget breached, 2 a bad argument or an unknown DAG",
    default=None,
)
ARG_JSON = Arg(("--json",), help="Print the report as JSON", action="store_true")
REPORT_ARGS = (ARG_DAG_ID, ARG_SINCE, ARG_JSON, ARG_CONN_ID)
_AGO = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    if match := _AGO.match(value):
        amount, unit = int(match.group(1)), match.group(2)
        unit_name = {"d": "days", "h": "hours", "m": "minutes"}[unit]
        return datetime.now(UTC) - timedelta(**{unit_name: amount})
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        usage_error(f"--since {value!r} is neither an ISO-8601 time (2026-11-28) nor 30d / 12h / 90m.")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _budgets_of(dag_id: str) -> tuple[list[Any], str | None]:
    """The budgets the DAG declares, or none and why they could not be read."""
    from airflow.utils.cli import get_bagged_dag

    from airflow_integrity.hooks.error_budgets import declared_budgets

    try:
        return declared_budgets(get_bagged_dag(None, dag_id)), None
    except Exception as exc:  # a DAG that no longer parses still has its figures in the trail
        return [], f"the DAG's budgets could not be read ({type(exc).__name__}: {exc})"


def report(args: argparse.Namespace) -> None:
    """Print the DAG's budgets (measured) and its figures per task."""
    from airflow_integrity.hooks.error_budgets import counters_json, measure_budgets, task_figures
    from airflow_integrity.hooks.integrity import IntegrityCheckHook
    from airflow_integrity.store.audit.chain import AuditLog

    since = _since(args.since)
    store = IntegrityCheckHook(integrity_conn_id=args.conn_id).get_store()
    AuditLog(store).chain_pending()
    budgets, unreadable = _budgets_of(args.dag_id)
    now = datetime.now(UTC)
    figures = measure_budgets(store, args.dag_id, budgets, since=since, until=now)
    start = since or now - timedelta(days=30)
    per_task = task_figures(store, args.dag_id, start, now)
    result: dict[str, Any] = {
        "dag_id": args.dag_id,
        "since": start.isoformat(),
        "until": now.isoformat(),
        "budgets": [f.as_dict() for f in figures],
        "tasks": counters_json(per_task),
    }
    if unreadable:
        if not per_task[None]["runs"]:
            usage_error(
                f"no DAG {args.dag_id!r} here and no run of it in the trail since {start.isoformat()}: "
                f"{unreadable}."
            )
        result["note"] = unreadable
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    if any(f.breached for f in figures):
        sys.exit(1)


def _print(result: dict[str, Any]) -> None:
    print(f"Error budgets of {result['dag_id']}")
    if result.get("note"):
        print(f"  ({result['note']})")
    if not result["budgets"]:
        print("  none declared")
    for b in result["budgets"]:
        rate = "n/a" if b["rate"] is None else f"{b['rate']:.2%}"
        status = "BREACHED" if b["breached"] else "ok"
        print(
            f"  {b['name']:<40} {b['count']:>7} of {b['total']:<7} {rate:>8}  max {b['max_rate']:.2%}  {status}"
            f"  ({b['since'][:19]} to {b['until'][:19]}, on breach: {b['on_breach']})"
        )
    print(f"Figures from {result['since'][:19]} to {result['until'][:19]} (UTC)")
    for task, counts in result["tasks"].items():
        shown = ", ".join(f"{name} {value}" for name, value in counts.items() if value)
        print(f"  {task:<40} {shown or '-'}")
