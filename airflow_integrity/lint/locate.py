"""Where in its file a task (or a DAG) is defined: the line a report points at, and whether it is certain.

Airflow keeps a DAG's file but not a task's line, so the file's syntax tree is read: within the DAG's own
definition (``with DAG(...)``, ``@dag``) first, then the whole file, a call with ``task_id="..."`` or a function
decorated as a task with that name. A task found once is *located*; one whose id is built at parse time (a loop,
an f-string) or appears more than once points at its DAG's line and is not located (no waiver applies to it).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class _Definitions:
    tasks: dict[str, list[int]]  # task id (or function name) -> the lines it is defined on, in the whole file
    dags: dict[str, tuple[int, dict[str, list[int]]]]  # DAG id -> (its line, the same within its definition)


def _dag_id(call: ast.Call) -> str | None:
    for keyword in call.keywords:
        if keyword.arg == "dag_id" and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _is_dag_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    name = ast.unparse(node.func)
    return name == "DAG" or name.endswith(".DAG")


def _tasks(root: ast.AST) -> dict[str, list[int]]:
    tasks: dict[str, list[int]] = {}
    for node in ast.walk(root):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                value = keyword.value
                if keyword.arg == "task_id" and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    tasks.setdefault(value.value, []).append(node.lineno)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.decorator_list:
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if any("task" in d for d in decorators) and not any(_is_dag_decorator(d) for d in decorators):
                tasks.setdefault(node.name, []).append(node.decorator_list[0].lineno)
    return tasks


def _is_dag_decorator(text: str) -> bool:
    return text == "dag" or text.startswith(("dag(", "dag.")) or ".dag(" in text


@lru_cache(maxsize=256)
def _parse(path: str) -> _Definitions:
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    except (OSError, SyntaxError, ValueError):
        return _Definitions({}, {})
    dags: dict[str, tuple[int, ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.With):
            for item in node.items:
                if _is_dag_call(item.context_expr):
                    dag_id = _dag_id(item.context_expr)  # type: ignore[arg-type]
                    if dag_id:
                        dags.setdefault(dag_id, (node.lineno, node))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                if _is_dag_decorator(ast.unparse(decorator)):
                    dag_id = _dag_id(decorator) if isinstance(decorator, ast.Call) else None
                    dags.setdefault(dag_id or node.name, (decorator.lineno, node))
        elif isinstance(node, ast.Call) and _is_dag_call(node):
            dag_id = _dag_id(node)
            if dag_id:
                dags.setdefault(dag_id, (node.lineno, tree))  # DAG(...) outside a with: its tasks anywhere
    whole = _tasks(tree)
    return _Definitions(
        whole, {dag_id: (line, whole if node is tree else _tasks(node)) for dag_id, (line, node) in dags.items()}
    )


def locate_task(path: str, dag_id: str, task_id: str) -> tuple[int, bool]:
    """``(line, located)``: the line that defines the task, or its DAG's line (1 when neither is known)."""
    definitions = _parse(path)
    names = [task_id] if "." not in task_id else [task_id, task_id.rsplit(".", 1)[-1]]  # in a task group
    dag = definitions.dags.get(dag_id)
    for scope in ([dag[1]] if dag else []) + [definitions.tasks]:
        for name in names:
            lines = scope.get(name, [])
            if len(lines) == 1:
                return lines[0], True
            if len(lines) > 1:
                return dag_line(path, dag_id), False
    return dag_line(path, dag_id), False


def dag_line(path: str, dag_id: str) -> int:
    """The line that defines the DAG (1 when it cannot be told)."""
    dag = _parse(path).dags.get(dag_id)
    return dag[0] if dag else 1
