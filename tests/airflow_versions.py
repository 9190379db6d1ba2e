"""What the tests reach differently on the Airflow versions the package supports (3.1 and later): where the DAG
bag lives, how the API's auth manager is reset, and how the package's CLI is invoked (Airflow 3.1 loads no
provider CLI commands: ``python -m airflow_integrity.cli`` offers the same ones)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def airflow_version() -> tuple[int, int]:
    from importlib.metadata import version

    major, minor = version("apache-airflow-core").split(".")[:2]
    return int(major), int(minor)


def dag_bag_module() -> Any:
    """The module of ``DagBag`` and ``sync_bag_to_db`` (``airflow.dag_processing.dagbag`` from 3.2)."""
    try:
        from airflow.dag_processing import dagbag
    except ImportError:  # Airflow 3.1
        from airflow.models import dagbag
    return dagbag


def reset_auth_manager() -> None:
    """Forget the API's auth manager, so the next ``create_auth_manager()`` builds the configured one."""
    from airflow.api_fastapi import app

    state = getattr(app, "_AuthManagerState", None)
    if state is not None:
        state.instance = None
    else:  # Airflow 3.1
        app.auth_manager = None


def integrity_cli() -> list[str]:
    """The command that runs ``airflow integrity ...`` with this interpreter's Airflow: append the arguments."""
    if airflow_version() >= (3, 2):
        return [str(Path(sys.executable).with_name("airflow")), "integrity"]
    return [sys.executable, "-m", "airflow_integrity.cli", "integrity"]
