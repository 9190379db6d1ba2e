"""Operators whose tasks change something outside Airflow, and whether a task of one is guarded by a key.

Known by class name anywhere in the task's class hierarchy, so that subclasses and providers' variants count,
and without importing any provider. A task of the package's keyed operators (``IdempotentHttpOperator``,
``IdempotentPythonOperator``, ``@task.idempotent``) is guarded whatever its base class.
"""

from __future__ import annotations

import re
from typing import Any

from airflow_integrity.signatures import operator_class

# class name -> the effect, as a report names it.
KNOWN_EFFECTS = {
    "HttpOperator": "HTTP {method} request",
    "SimpleHttpOperator": "HTTP {method} request",
    "SQLExecuteQueryOperator": "SQL statement",
    "PostgresOperator": "SQL statement",
    "MySqlOperator": "SQL statement",
    "MsSqlOperator": "SQL statement",
    "OracleOperator": "SQL statement",
    "SnowflakeOperator": "SQL statement",
    "SQLInsertRowsOperator": "rows inserted into a table",
    "GenericTransfer": "rows copied into a table",
    "EmailOperator": "e-mail",
    "SlackAPIPostOperator": "Slack message",
    "SlackWebhookOperator": "Slack message",
    "SnsPublishOperator": "SNS notification",
    "SqsPublishOperator": "SQS message",
    "TriggerDagRunOperator": "DAG run triggered",
    "S3CreateObjectOperator": "object-store write",
    "S3CopyObjectOperator": "object-store write",
    "S3DeleteObjectsOperator": "object-store delete",
    "GCSDeleteObjectsOperator": "object-store delete",
    "ObjectStoragePathWriteOperator": "object-store write",
}
# Transfers that write into a system: <Source>To<Target>Operator.
_TRANSFER = re.compile(
    r"To(S3|GCS|Wasb|ADLS|AzureDataLake|AzureBlobStorage|SFTP|Sftp|FTP|Redshift|Snowflake"
    r"|BigQuery|Postgres|MySql|MsSql|Oracle|DynamoDB|Salesforce|Slack|Email)Operator$"
)
_SAFE_HTTP = frozenset({"GET", "HEAD", "OPTIONS"})
_READ_SQL = re.compile(r"^\s*(select|with|show|explain|describe|values)\b", re.IGNORECASE)
# Anything that can write, even inside a read-looking statement (a data-modifying WITH, EXPLAIN ANALYZE, SELECT
# INTO, a function with effects): such a statement is not taken for a read.
_WRITES = re.compile(
    r"\b(insert|update|delete|merge|into|truncate|drop|alter|create|grant|revoke|copy|call|do|execute|analyze"
    r"|vacuum|refresh|lock|nextval|setval|pg_terminate_backend|pg_cancel_backend|set_config|dblink\w*)\b",
    re.IGNORECASE,
)
_SQL_COMMENT = re.compile(r"(--[^\n]*\n)|(/\*.*?\*/)", re.DOTALL)


def argument(task: Any, name: str, default: Any = None) -> Any:
    """An argument of the task (for a mapped task, its partial argument; an expanded one is unknown: ``None``)."""
    partial = getattr(task, "partial_kwargs", None)
    if isinstance(partial, dict):
        return partial.get(name, default if name not in _expanded(task) else None)
    return getattr(task, name, default)


def _expanded(task: Any) -> set[str]:
    expand = getattr(getattr(task, "expand_input", None), "value", None)
    return set(expand) if isinstance(expand, dict) else set()


def is_keyed(task: Any) -> bool:
    """Whether the task's effect is claimed under an idempotency key (the package's keyed operators)."""
    from airflow_integrity.operators._idempotency import IdempotencyMixin

    return issubclass(operator_class(task), IdempotencyMixin)


def external_effect(task: Any) -> str | None:
    """The known external effect of the task's operator (``None``: none known, or only a read)."""
    for cls in operator_class(task).__mro__:
        name = cls.__name__
        effect = KNOWN_EFFECTS.get(name)
        if effect is None and _TRANSFER.search(name):
            effect = f"transfer into {_TRANSFER.search(name).group(1)}"  # type: ignore[union-attr]
        if effect is None:
            continue
        if effect.startswith("HTTP"):
            method = str(argument(task, "method", "POST") or "POST").upper()  # an expanded method may be any
            return None if method in _SAFE_HTTP else effect.format(method=method)
        if effect == "SQL statement" and _only_reads(argument(task, "sql")):
            return None
        return effect
    return None


def _only_reads(sql: Any) -> bool:
    statements = [sql] if isinstance(sql, str) else list(sql) if isinstance(sql, (list, tuple)) else []
    if not statements:
        return False
    for statement in statements:
        if not isinstance(statement, str):
            return False
        text = _SQL_COMMENT.sub("\n", statement)
        if text.strip().endswith(".sql"):
            return False  # a file: its statements are not known here
        if not all(_READ_SQL.match(part) for part in text.split(";") if part.strip()) or _WRITES.search(text):
            return False
    return True
