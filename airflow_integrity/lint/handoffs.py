"""Data handed from task to task, and which hand-offs a validation guards.

A hand-off is data one task returns and another takes: an ``XComArg`` in the taking task's arguments
(TaskFlow calls, ``.output``, mapped ``expand`` inputs) or an ``xcom_pull`` in one of its templates. Ordering
alone (``a >> b``) hands nothing on. A hand-off is guarded when the giving task's output was validated
(``ValidateDataOperator``, ``@task.validated``, ``ValidatedDataSensor``) or the taking task validates what it
takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from airflow_integrity.signatures import operator_class

_PULL = re.compile(r"xcom_pull\s*\(")
_TASK_IDS = re.compile(r"task_ids\s*=\s*(?P<ids>\[[^\]]*\]|\([^)]*\)|'[^']+'|\"[^\"]+\")")
_FIRST_ARGUMENT = re.compile(r"^\s*(?P<ids>\[[^\]]*\]|\([^)]*\)|'[^']+'|\"[^\"]+\")")
_QUOTED = re.compile(r"['\"]([^'\"]+)['\"]")


def validates(task: Any) -> bool:
    """Whether the task validates data (its input, or what it returns)."""
    from airflow_integrity.operators.validate import HandoffPolicyArguments
    from airflow_integrity.sensors.validated_data import ValidatedDataSensor

    return issubclass(operator_class(task), (HandoffPolicyArguments, ValidatedDataSensor))


def sources(task: Any) -> set[str]:
    """The ids of the tasks whose returned data ``task`` takes."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    taken = {operator.task_id for operator, _ in XComArg.iter_xcom_references(_arguments(task))}
    for text in _strings(_arguments(task)):
        for match in _PULL.finditer(text):
            arguments = _call_arguments(text, match.end())
            ids = _TASK_IDS.search(arguments) or _FIRST_ARGUMENT.match(arguments)
            if ids is not None:
                taken.update(_QUOTED.findall(ids["ids"]))
    taken.discard(task.task_id)
    return taken


def unguarded(dag: Any) -> Iterator[tuple[Any, Any]]:
    """``(giver, taker)`` for each hand-off of the DAG that no validation guards."""
    for taker in dag.tasks:
        if validates(taker):
            continue
        for task_id in sorted(sources(taker)):
            giver = dag.task_dict.get(task_id)
            if giver is not None and not validates(giver):
                yield giver, taker


def _call_arguments(text: str, start: int) -> str:
    """The text of a call's arguments, from ``start`` (just after its ``(``) to its closing parenthesis."""
    depth, quote = 0, ""
    for position in range(start, len(text)):
        char = text[position]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                return text[start:position]
            depth -= 1
    return text[start:]


def _arguments(task: Any) -> list[Any]:
    """What the task is given: its templated fields, and for a mapped task its partial and expanded arguments."""
    given = [getattr(task, name, None) for name in getattr(task, "template_fields", ())]
    partial = getattr(task, "partial_kwargs", None)
    if isinstance(partial, dict):
        given.append(partial)
    for name in ("expand_input", "op_kwargs_expand_input"):  # mapped: classic, and TaskFlow's .expand()
        expand = getattr(task, name, None)
        if expand is not None:
            given.append(getattr(expand, "value", None))
    return given


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _strings(item)
