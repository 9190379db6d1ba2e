"""Where in its file a task (or a DAG) is defined: the line a report points at.

Airflow keeps a DAG's file but not a task's line, so the file's syntax tree is read: a call with
``task_id="..."``, or a function decorated as a task with that name. Ids made at parse time (in a loop, from
an f-string) are not found; the DAG's line stands for them.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=256)
def _definitions(path: str) -> tuple[dict[str, int], dict[str, int]]:
    """``(task id -> line, DAG id -> line)`` of the file."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    except (OSError, SyntaxError, ValueError):
        return {}, {}
    tasks: dict[str, int] = {}
    dags: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
                    if keyword.arg == "task_id":
                        tasks.setdefault(keyword.value.value, node.lineno)
                    elif keyword.arg == "dag_id":
                        dags.setdefault(keyword.value.value, node.lineno)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.decorator_list:
            decorators = [ast.unparse(d) for d in node.decorator_list]
            line = node.decorator_list[0].lineno
            if any(d == "dag" or d.startswith(("dag(", "dag.")) or ".dag(" in d for d in decorators):
                dags.setdefault(node.name, line)
            elif any("task" in d for d in decorators):
                tasks.setdefault(node.name, line)
    return tasks, dags


def task_line(path: str, dag_id: str, task_id: str) -> int:
    """The line that defines the task (the DAG's line when it cannot be told; 1 when neither can)."""
    tasks, _ = _definitions(path)
    line = tasks.get(task_id) or tasks.get(task_id.rsplit(".", 1)[-1])  # a task in a task group
    return line or dag_line(path, dag_id)


def dag_line(path: str, dag_id: str) -> int:
    """The line that defines the DAG (1 when it cannot be told)."""
    return _definitions(path)[1].get(dag_id, 1)
