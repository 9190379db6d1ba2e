"""``python -m airflow_integrity.cli integrity ...``: the ``airflow integrity`` commands, where Airflow's own CLI
does not offer them. Airflow 3.1's CLI loads no provider's commands (only executors' and auth managers'); 3.2
and later load them from the provider's ``cli`` entry, and both ways run the same command definitions.

    python -m airflow_integrity.cli integrity db migrate --conn-id integrity_owner --runtime-role integrity_runtime
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` as ``airflow`` parses its own and run the command."""
    from airflow.cli import cli_parser
    from airflow.configuration import write_default_airflow_configuration_if_needed

    from airflow_integrity.cli.definition import get_integrity_cli_commands

    parser = cli_parser.DefaultHelpParser(
        prog="python -m airflow_integrity.cli", formatter_class=cli_parser.AirflowHelpFormatter
    )
    subparsers = parser.add_subparsers(dest="subcommand", metavar="GROUP_OR_COMMAND")
    subparsers.required = True
    for command in get_integrity_cli_commands():
        cli_parser._add_command(subparsers, command)
    args = parser.parse_args(argv)
    write_default_airflow_configuration_if_needed()
    args.func(args)


if __name__ == "__main__":
    main()
