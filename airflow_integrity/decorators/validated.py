"""``@task.validated``: a TaskFlow task whose return value is validated before it is handed downstream.

.. code-block:: python

    @task.validated(suite="suites/patients.json", on_failure="quarantine", quarantine_path="s3://q/")
    def register() -> list[dict]: ...

Same policies as :class:`~airflow_integrity.operators.validate.ValidateDataOperator`. The return value is
what the function returned (``fail`` / ``warn``) or, with ``quarantine``, its good rows as they were returned
(the same record objects, the rows of a returned DataFrame, or JSON text holding the good records' own text);
the summary and the full result are in the integrity store, named by the audit event
(``validation.passed`` / ``.warned`` / ``.failed``) and logged with their ``result_id``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import DecoratedOperator, task_decorator_factory
from airflow.providers.standard.operators.python import PythonOperator

from airflow_integrity.operators.validate import HandoffPolicyArguments
from airflow_integrity.validation.suite_refs import check_suite_reference

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskDecorator
    from airflow.sdk import Context


class _ValidatedDecoratedOperator(HandoffPolicyArguments, DecoratedOperator, PythonOperator):
    """Runs the function, validates its return value (and, optionally, named inputs), applies the policy.

    Args:
        suite: The suite for the return value (any suite reference).
        on_failure: ``fail`` (default), ``warn`` or ``quarantine``.
        quarantine_path: Quarantine folder fixed in DAG code (templated; refused when the run's conf chooses it);
            default ``[integrity] quarantine_dir``. Each validation writes a new file there, never overwritten.
        quarantine_format: ``csv`` (default), ``parquet`` or ``jsonl``.
        allow_quarantine_path_from_conf: Accept a ``quarantine_path`` that the run's conf chooses.
        max_unexpected_fraction: With ``quarantine``, fail when more than this fraction of rows is bad.
        quarantine_warnings: Also quarantine rows rejected only by ``warning`` expectations.
        input_suites: ``{argument name: suite}``: inputs validated before the function runs; a failure fails
            the task (policy ``fail``) without running it.
        expectation_parameters: Values of ``$PARAMETER`` arguments in the suites (templated).
        context_dir: GX project root, for suites given by name.
        allow_empty: Accept data without rows.
        samples: What summaries show of failing values: ``values``, ``hashed`` (keyed fingerprints) or ``none``.
        business_key: Business key of the audit events (templated).
        integrity_conn_id: The integrity store connection.
    """

    template_fields: Sequence[str] = (
        "templates_dict",
        "op_args",
        "op_kwargs",
        "expectation_parameters",
        "quarantine_path",
        "business_key",
    )
    template_fields_renderers = {"templates_dict": "json", "op_args": "py", "op_kwargs": "py"}
    custom_operator_name: str = "@task.validated"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Any,
        op_kwargs: Any,
        suite: Any,
        on_failure: str = "fail",
        quarantine_path: Any = None,
        quarantine_format: str | None = None,
        allow_quarantine_path_from_conf: bool = False,
        max_unexpected_fraction: float = 0.1,
        quarantine_warnings: bool = False,
        input_suites: Mapping[str, Any] | None = None,
        expectation_parameters: Mapping[str, Any] | None = None,
        context_dir: str | None = None,
        allow_empty: bool = False,
        samples: str = "values",
        business_key: str | None = None,
        integrity_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        for ref in [suite, *(input_suites or {}).values()]:
            check_suite_reference(ref, context_dir=context_dir)
        unknown = set(input_suites or {}) - set(inspect.signature(python_callable).parameters)
        if unknown:
            raise ValueError(
                f"input_suites names {sorted(unknown)}, which are not arguments of "
                f"{python_callable.__name__}(); use the names of its parameters."
            )
        super().__init__(
            kwargs_to_upstream={"python_callable": python_callable, "op_args": op_args, "op_kwargs": op_kwargs},
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            **kwargs,
        )
        self.keep_policy_arguments(locals())
        self.suite = suite
        self.input_suites = dict(input_suites or {})
        self.expectation_parameters = expectation_parameters
        self.context_dir = context_dir
        self.allow_empty = allow_empty
        self.business_key = business_key
        self.integrity_conn_id = integrity_conn_id

    def _validate(self, hook: Any, value: Any, suite: Any, *, label: str, on_failure: str) -> Any:
        from airflow_integrity.hooks.validation import fail_on_bad_input

        return fail_on_bad_input(
            lambda: hook.validate_data(
                value,
                suite,
                label=label,
                on_failure=on_failure,
                collect_unexpected_rows=on_failure == "quarantine",
                business_key=self.business_key,
                expectation_parameters=self.expectation_parameters,
                context_dir=self.context_dir,
                allow_empty=self.allow_empty,
                samples=self.samples,
            )
        )

    def execute(self, context: Context) -> Any:
        """Validate inputs, run the function, validate and hand on its return value."""
        from airflow_integrity.hooks.integrity import IntegrityCheckHook
        from airflow_integrity.hooks.validation import enforce
        from airflow_integrity.operators.validate import quarantine_location

        hook = IntegrityCheckHook(integrity_conn_id=self.integrity_conn_id)
        location = None
        if self.on_failure == "quarantine":  # before anything runs: a location the run's conf chose is refused
            location = quarantine_location(self, self.quarantine_path, context)
        if self.input_suites:
            bound = inspect.signature(self.python_callable).bind_partial(*self.op_args, **self.op_kwargs)
            for name, suite in self.input_suites.items():
                if name not in bound.arguments:
                    continue
                label = f"argument {name!r} of task {self.task_id!r}"
                run = self._validate(hook, bound.arguments[name], suite, label=label, on_failure="fail")
                enforce(hook, run, on_failure="fail", business_key=self.business_key)
        value = super().execute(context)
        run = self._validate(
            hook, value, self.suite, label=f"return value of task {self.task_id!r}", on_failure=self.on_failure
        )
        handoff = self.apply_policy(hook, run, location, self.business_key)
        self.log.info("Validation result %s (%s) is in the integrity store.", run.result_id, run.status)
        if handoff.quarantine is not None:
            return handoff.good  # the good rows of what the function returned, the same objects
        return value


def validated_task(
    python_callable: Callable[..., Any] | None = None,
    multiple_outputs: bool | None = None,
    **kwargs: Any,
) -> TaskDecorator:
    """Wrap a function into a task whose return value is validated against ``suite`` before it flows on.

    Args:
        python_callable: The function.
        multiple_outputs: Unroll a returned dict into several XCom values.
        kwargs: ``suite`` (required), ``on_failure``, ``quarantine_path``, ... (see the operator) and any
            task argument.
    """
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=_ValidatedDecoratedOperator,
        **kwargs,
    )
