"""``airflow integrity qualify``: qualify the installed deployment, for the validation file."""

from __future__ import annotations

import argparse
import json
import sys

from airflow.cli.cli_config import Arg

from airflow_integrity.cli.args import ARG_CONN_ID
from airflow_integrity.cli.exits import usage_error

ARG_KEY_CONN_ID = Arg(
    ("--key-conn-id",),
    help="Connection holding the checkpoint key (default: [integrity] checkpoint_key_conn_id); it checks the "
    "newest checkpoint and signs the report (repeat for several keys)",
    action="append",
    default=None,
)
ARG_RUNTIME_ROLE = Arg(
    ("--runtime-role",),
    metavar="ROLE",
    help="PostgreSQL: the role Airflow's components connect as, when qualify runs as the store's owner",
    default=None,
)
ARG_JSON = Arg(("--json",), help="Print the signed JSON report instead of the text one", action="store_true")
ARG_OUTPUT = Arg(("--output", "-o"), help="Also write the signed JSON report to this file")
ARG_VERIFY_REPORT = Arg(
    ("--verify-report",),
    metavar="FILE",
    help="Check a JSON report's signature with the key instead of qualifying (exit 0 when it verifies)",
)
QUALIFY_ARGS = (ARG_CONN_ID, ARG_KEY_CONN_ID, ARG_RUNTIME_ROLE, ARG_JSON, ARG_OUTPUT, ARG_VERIFY_REPORT)


def qualify(args: argparse.Namespace) -> None:
    """Run every check; exit 0 only when all pass (1 otherwise; 2 for a report that does not verify)."""
    if args.verify_report:
        _verify_report(args)
        return
    from airflow_integrity.qualification.run import qualify as run_checks
    from airflow_integrity.store import StoreError

    try:
        report, signer = run_checks(
            conn_id=args.conn_id, key_conn_ids=args.key_conn_id or (), runtime_role=args.runtime_role
        )
    except StoreError as exc:  # no store to qualify at all (unknown connection, Airflow's own database)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    document = report.signed(signer)
    if args.output:
        try:
            with open(args.output, "x", encoding="utf-8") as out:
                json.dump(document, out, indent=2, sort_keys=True, default=str)
                out.write("\n")
        except FileExistsError:
            print(
                f"error: {args.output} exists; a report is never overwritten (it was not written).",
                file=sys.stderr,
            )
            sys.exit(1)
    print(json.dumps(document, indent=2, sort_keys=True, default=str) if args.json else report.text())
    if not report.passed:
        sys.exit(1)


def _verify_report(args: argparse.Namespace) -> None:
    from airflow_integrity.hooks.audit_checkpoints import load_checkpoint_key
    from airflow_integrity.qualification.report import load_report, verify_report
    from airflow_integrity.settings import load_settings

    conn_ids = args.key_conn_id or [load_settings().checkpoint_key_conn_id]
    try:
        keys = [load_checkpoint_key(conn_id) for conn_id in conn_ids if conn_id]
        with open(args.verify_report, encoding="utf-8") as source:
            document = load_report(source.read())
    except (OSError, ValueError) as exc:
        usage_error(str(exc))
    if not keys:
        usage_error("give the key with --key-conn-id")
    ok, why = verify_report(document, keys)
    print(("VERIFIED: " if ok else "NOT VERIFIED: ") + why)
    if not ok:
        sys.exit(2)
    if not document.get("passed"):
        print("The report verifies, and records a failed qualification.")
        sys.exit(1)
