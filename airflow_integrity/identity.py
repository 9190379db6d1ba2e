"""Who and where: the Airflow component and host that record an event, and a task instance's identity."""

from __future__ import annotations

import os
import socket
import sys
from functools import cache
from typing import Any

_COMPONENTS = ("scheduler", "api-server", "triggerer", "dag-processor", "celery", "standalone")


@cache
def hostname() -> str:
    """This host's name as Airflow records it."""
    return socket.gethostname()


def component() -> str:
    """The Airflow component this process runs: scheduler, api-server, worker, ... (``python`` if unknown)."""
    # Task runners are forked from the component that launched them (LocalExecutor: the scheduler), so
    # their argv still names it; the supervisor channel says what they are.
    if in_task_runner():
        return "worker"
    args = [os.path.basename(arg) for arg in sys.argv[:3]]
    for arg in args[1:]:
        if arg in _COMPONENTS:
            return arg
    if "airflow" in args[0:1] and "tasks" in args:
        return "worker"
    return os.environ.get("AIRFLOW_INTEGRITY_COMPONENT", "worker" if in_task_runner() else "python")


def in_task_runner() -> bool:
    """Whether this process is a task runner talking to its supervisor (a worker running a task)."""
    try:
        from airflow.sdk.execution_time import task_runner

        return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None
    except ImportError:
        return False


def actor(user: str | None = None) -> str:
    """The actor of an event: the person when one acted, otherwise ``component@host``."""
    return user or f"{component()}@{hostname()}"


def task_instance_identity(ti: Any) -> dict[str, Any]:
    """Identity fields of a task instance, from either the worker's or the scheduler's model."""
    dag_version = getattr(ti, "dag_version_id", None)
    bundle_version = None
    bundle = getattr(ti, "bundle_instance", None)
    if bundle is not None:
        bundle_version = getattr(bundle, "version", None)
    else:
        dag_run = _loaded(ti, "dag_run")
        bundle_version = getattr(dag_run, "bundle_version", None) if dag_run is not None else None
    try_number = getattr(ti, "try_number", None)
    map_index = getattr(ti, "map_index", None)
    return {
        "dag_id": getattr(ti, "dag_id", None),
        "run_id": getattr(ti, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "map_index": int(map_index) if map_index is not None else None,
        "try_number": int(try_number) if try_number is not None else None,
        "dag_version": str(dag_version) if dag_version is not None else None,
        "bundle_version": str(bundle_version) if bundle_version is not None else None,
    }


def _loaded(obj: Any, attribute: str) -> Any:
    """An ORM relationship only if already loaded (never trigger lazy loading from a listener)."""
    state = getattr(obj, "_sa_instance_state", None)
    if state is not None and attribute in state.unloaded:
        return None
    return getattr(obj, attribute, None)
