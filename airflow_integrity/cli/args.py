"""Arguments several ``airflow integrity`` commands share."""

from __future__ import annotations

from airflow.cli.cli_config import Arg

ARG_CONN_ID = Arg(
    ("--conn-id",),
    help="Connection of the integrity store (default: [integrity] conn_id, then the embedded SQLite store)",
    default=None,
)
