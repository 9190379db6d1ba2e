"""``airflow integrity ...`` command tree, registered through the provider's ``cli`` entry.

Only argument definitions live here; each command's code is imported when the command runs.
"""

from __future__ import annotations

from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

from airflow_integrity.cli.args import ARG_CONN_ID
from airflow_integrity.cli.audit_command import AUDIT_COMMANDS
from airflow_integrity.cli.ledger_command import LEDGER_COMMANDS
from airflow_integrity.cli.lint_command import LINT_ARGS
from airflow_integrity.cli.qualify_command import QUALIFY_ARGS
from airflow_integrity.cli.report_command import REPORT_ARGS

ARG_RUNTIME_ROLE = Arg(
    ("--runtime-role",),
    metavar="ROLE",
    help="PostgreSQL role every Airflow component connects as. After migrating, grant it exactly what the "
    "store needs (SELECT; INSERT into the columns the product writes; UPDATE only on the idempotency ledger's "
    "rows; the chain and the ledger history are written by the owner's functions) and revoke anything more. "
    "Run as the store's owner role, and again after every upgrade",
    default=None,
)
ARG_CHECK_RUNTIME_ROLE = Arg(
    ("--runtime-role",),
    metavar="ROLE",
    help="Also check that this PostgreSQL role holds exactly the store's runtime privileges and cannot alter "
    "tables, disable triggers or create objects",
    default=None,
)

DB_COMMANDS = (
    ActionCommand(
        name="migrate",
        help="Create or upgrade the integrity store schema (safe to run from several processes at once)",
        func=lazy_load_command("airflow_integrity.cli.db_command.migrate"),
        args=(ARG_CONN_ID, ARG_RUNTIME_ROLE),
    ),
    ActionCommand(
        name="check",
        help="Check that the integrity store is reachable and its schema is current",
        func=lazy_load_command("airflow_integrity.cli.db_command.check"),
        args=(ARG_CONN_ID, ARG_CHECK_RUNTIME_ROLE),
    ),
)


def get_integrity_cli_commands() -> list[GroupCommand]:
    """Return the ``integrity`` command group for Airflow's CLI parser."""
    return [
        GroupCommand(
            name="integrity",
            help="Manage the airflow-integrity store, audit trail and idempotency ledger",
            subcommands=(
                GroupCommand(name="db", help="Manage the integrity store database", subcommands=DB_COMMANDS),
                GroupCommand(
                    name="audit",
                    help="Verify, export and sign the tamper-evident audit trail",
                    subcommands=AUDIT_COMMANDS,
                ),
                GroupCommand(
                    name="ledger", help="Inspect and release idempotency keys", subcommands=LEDGER_COMMANDS
                ),
                ActionCommand(
                    name="report",
                    help="A DAG's error budgets and error figures, measured from its audit trail "
                    "(exit 1 when a budget is breached)",
                    func=lazy_load_command("airflow_integrity.cli.report_command.report"),
                    args=REPORT_ARGS,
                ),
                ActionCommand(
                    name="lint",
                    help="Report the hand-offs no validation guards, effects with no idempotency key or no undo, "
                    "and approvals whose signatures state no meaning, per DAG (exit 1 on findings)",
                    func=lazy_load_command("airflow_integrity.cli.lint_command.lint"),
                    args=LINT_ARGS,
                ),
                ActionCommand(
                    name="qualify",
                    help="Qualify this deployment: store schema and protections, recording, tamper detection, "
                    "a concurrent claim, the checkpoint key, the clock, the spool and the versions; a text and a "
                    "signed JSON report (exit 0 only when every check passes)",
                    func=lazy_load_command("airflow_integrity.cli.qualify_command.qualify"),
                    args=QUALIFY_ARGS,
                ),
            ),
        )
    ]
