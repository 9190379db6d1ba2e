"""The rules, applied to one parsed DAG."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow_integrity.lint.effects import external_effect, is_keyed
from airflow_integrity.lint.findings import (
    UNCOMPENSATED_EFFECT,
    UNGUARDED_EFFECT,
    UNSIGNED_APPROVAL,
    UNVALIDATED_HANDOFF,
    Finding,
)
from airflow_integrity.lint.handoffs import unguarded
from airflow_integrity.lint.locate import locate_task
from airflow_integrity.signatures import declared_meaning, is_human_in_the_loop


def lint_dag(dag: Any, file: str) -> list[Finding]:
    """Every finding of the DAG, in task order; ``file`` is how reports name the DAG's file."""
    path = dag.fileloc

    def finding(kind: str, task: Any, message: str) -> Finding:
        line, located = locate_task(path, dag.dag_id, task.task_id)
        return Finding(file, line, kind, dag.dag_id, task.task_id, message, located)

    found = [finding(kind, task, message) for kind, task, message in _task_findings(dag)]
    for giver, taker in unguarded(dag):
        found.append(
            finding(
                UNVALIDATED_HANDOFF,
                taker,
                f"takes the data {giver.task_id!r} returns, and neither task validates it: validate it on the "
                f"way (a ValidateDataOperator between them, or @task.validated on {giver.task_id!r})",
            )
        )
    return sorted(found)


def _task_findings(dag: Any) -> Iterator[tuple[str, Any, str]]:
    compensates = any(_is_compensation(task) for task in dag.tasks)
    for task in dag.tasks:
        effect = external_effect(task)
        keyed = is_keyed(task)
        if effect is not None and not keyed:
            yield (
                UNGUARDED_EFFECT,
                task,
                f"{type(task).__name__} ({effect}) has no idempotency key: a retry, a cleared task or a second "
                "run does it again. Use IdempotentHttpOperator(key=...) or @task.idempotent(key=...), or pass "
                "the key to a system that deduplicates and record the decision",
            )
        if compensates and (keyed or effect is not None) and _undo(task) is None:
            yield (
                UNCOMPENSATED_EFFECT,
                task,
                "the DAG compensates, but this effect declares no undo: a failed process leaves it in place. "
                "Give it compensate=... (or compensate=NOTHING_TO_UNDO when nothing needs undoing)",
            )
        if is_human_in_the_loop(task) and declared_meaning(task) is None:
            yield (
                UNSIGNED_APPROVAL,
                task,
                f"{type(task).__name__} states no meaning for its signatures (recorded as 'review'): use "
                "ApprovalOperator, HITLBranchOperator or HITLEntryOperator, or set task.signature_meaning",
            )


def _is_compensation(task: Any) -> bool:
    from airflow_integrity.operators.compensation import CompensateOperator

    return isinstance(task, CompensateOperator)


def _undo(task: Any) -> Any:
    from airflow_integrity.operators.compensation import declared_undo

    return declared_undo(task)
