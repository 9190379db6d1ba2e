"""``@task.idempotent(key=...)``: a TaskFlow task whose effect happens once per business key."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.decorator import DecoratedOperator, task_decorator_factory

from airflow_integrity.operators.idempotent import IdempotentPythonOperator

if TYPE_CHECKING:
    from airflow.sdk.bases.decorator import TaskDecorator


class _IdempotentDecoratedOperator(DecoratedOperator, IdempotentPythonOperator):
    """The operator behind ``@task.idempotent``: the decorated function is the guarded work."""

    template_fields: Sequence[str] = IdempotentPythonOperator.template_fields
    custom_operator_name: str = "@task.idempotent"

    def __init__(self, *, python_callable: Callable, op_args: Any, op_kwargs: Any, **kwargs: Any) -> None:
        super().__init__(
            kwargs_to_upstream={"python_callable": python_callable, "op_args": op_args, "op_kwargs": op_kwargs},
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            **kwargs,
        )


def idempotent_task(
    python_callable: Callable | None = None,
    multiple_outputs: bool | None = None,
    **kwargs: Any,
) -> TaskDecorator:
    """Wrap a function into an ``IdempotentPythonOperator``: ``@task.idempotent(key="claim-{{ params.id }}")``.

    The function runs at most once per key; every later attempt (retry, clear, another run or DAG with the
    same key) returns the result the first one stored. The function can read its claim from an
    ``idempotency=None`` parameter or ``current_claim()``.

    Args:
        python_callable: The function (when used as ``@task.idempotent`` without arguments, which needs a key
            from ``default_args``).
        multiple_outputs: Unroll a returned dict into several XCom values.
        kwargs: Arguments of ``IdempotentPythonOperator`` (``key`` required) and of ``BaseOperator``.
    """
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=_IdempotentDecoratedOperator,
        **kwargs,
    )
