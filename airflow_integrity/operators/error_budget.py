"""``ErrorBudgetOperator``: measure a DAG's declared error budgets from its trail; fail or warn on a breach.

Declare the budgets next to the steps they watch and check them after the process::

    ErrorBudgetOperator(
        task_id="check_error_budgets",
        budgets=[
            ErrorBudget("quarantined_rows", max_rate=0.005, task_id="validate_claims"),
            ErrorBudget("fallbacks", max_rate=0.01, task_id="verify_insurance", on_breach="warn"),
        ],
    )

Every check records ``error_budget.measured`` per budget (the declaration, count, total, rate, window) and
``error_budget.breached`` for each budget above its rate; ``airflow integrity report DAG_ID`` and the HTTP API
show the same figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_integrity.compat import AirflowFailException
from airflow_integrity.hooks.error_budgets import ErrorBudget

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["ErrorBudget", "ErrorBudgetOperator"]


class ErrorBudgetOperator(BaseOperator):
    """Measure each budget over its window from the DAG's audit trail; record the figures; on a breach, fail (the
    budget's ``on_breach="fail"``) or log a warning (``"warn"``).

    Args:
        budgets: The DAG's error budgets.
        integrity_conn_id: Connection of the integrity store (default: ``[integrity] conn_id``).
        kwargs: Arguments of ``BaseOperator`` (``trigger_rule`` defaults to ``all_done``: a failed process is
            measured too).
    """

    ui_color = "#fdf3d0"
    # A breach is a finding about the process, not a failed step of it: the DAG's compensation ignores it.
    measures_the_process = True

    def __init__(
        self, *, budgets: Sequence[ErrorBudget], integrity_conn_id: str | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        budgets = list(budgets)
        if not budgets or not all(isinstance(b, ErrorBudget) for b in budgets):
            raise TypeError(f"Task {self.task_id!r}: budgets= must be a non-empty list of ErrorBudget.")
        names = [b.name for b in budgets]
        if len(set(names)) != len(names):
            raise ValueError(f"Task {self.task_id!r}: a budget is declared twice: {sorted(names)}.")
        self.budgets = budgets
        self.integrity_conn_id = integrity_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        """Measure, record, and fail on a breach declared ``fail``."""
        from airflow_integrity.hooks.error_budgets import measure_budgets
        from airflow_integrity.hooks.events import build_event
        from airflow_integrity.hooks.integrity import IntegrityCheckHook
        from airflow_integrity.store.audit.chain import AuditLog

        ti = context["ti"]
        hook = IntegrityCheckHook(integrity_conn_id=self.integrity_conn_id)
        store = hook.get_store()
        AuditLog(store).chain_pending()  # this run's own events of the last second count too
        figures = measure_budgets(store, ti.dag_id, self.budgets)
        shown = [f.as_dict() for f in figures]
        events = [build_event("error_budget.measured", task_instance=ti, details=d) for d in shown]
        events += [
            build_event("error_budget.breached", task_instance=ti, details=d)
            for f, d in zip(figures, shown, strict=True)
            if f.breached
        ]
        hook.record_events(events)
        for figure in figures:
            self.log.info(
                "Error budget %s: %d of %d (%s) against at most %.4f%%%s",
                figure.budget.name,
                figure.count,
                figure.total,
                "n/a" if figure.rate is None else f"{figure.rate:.4%}",
                figure.budget.max_rate * 100,
                ": BREACHED" if figure.breached else "",
            )
            if figure.breached and figure.budget.on_breach == "warn":
                self.log.warning("Error budget %s is breached (declared to warn).", figure.budget.name)
        failing = [f for f in figures if f.breached and f.budget.on_breach == "fail"]
        if failing:
            raise AirflowFailException(
                "Error budget breached: "
                + "; ".join(
                    f"{f.budget.name} at {f.count} of {f.total} ({(f.rate or 0):.2%}) over "
                    f"{f.budget.window}, at most {f.budget.max_rate:.2%} allowed"
                    for f in failing
                )
                + ". Find the cause in the trail (airflow integrity report "
                + f"{ti.dag_id}), fix it, then clear this task."
            )
        return shown
