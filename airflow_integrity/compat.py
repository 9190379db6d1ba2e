"""Names that moved between the Airflow versions the package supports (3.1 and later).

Airflow 3.2 moved the task-facing exceptions and the configuration into the Task SDK (``airflow.sdk``); 3.1 has
them in ``airflow.exceptions`` and ``airflow.configuration``. A task must raise the class its own Airflow's task
runner catches, so each name is taken from where the installed version defines it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
        TaskDeferred,
    )
else:
    try:
        from airflow.sdk.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowNotFoundException,
            AirflowSensorTimeout,
            AirflowSkipException,
            AirflowTaskTimeout,
            TaskDeferred,
        )
    except ImportError:  # Airflow 3.1
        from airflow.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowNotFoundException,
            AirflowSensorTimeout,
            AirflowSkipException,
            AirflowTaskTimeout,
            TaskDeferred,
        )
    try:
        from airflow.sdk import conf
    except ImportError:  # Airflow 3.1
        from airflow.configuration import conf

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "TaskDeferred",
    "conf",
    "is_arg_set",
]


def is_arg_set(value: Any) -> bool:
    """Whether an operator argument or param was given (not Airflow's "not set" marker)."""
    try:
        from airflow.sdk.definitions._internal.types import is_arg_set as given
    except ImportError:  # Airflow 3.1
        from airflow.sdk.definitions._internal.types import ArgNotSet

        return not isinstance(value, ArgNotSet)
    return bool(given(value))
